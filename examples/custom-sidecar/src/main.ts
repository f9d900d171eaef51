import { main } from "@buildpod/runtime";
import { report } from "./run.ts";

main({
  name: "test-results",
  description: "posts a summary of the workload's JUnit reports when the workload finishes",
  envPrefix: "TEST_RESULTS",
  commands: { report },
});
