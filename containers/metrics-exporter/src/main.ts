import { main } from "@buildpod/runtime";
import { runCommand } from "./run.ts";

main({
  name: "metrics-exporter",
  description: "push, serve and forward the Prometheus metrics files a job writes",
  envPrefix: "METRICS_EXPORTER",
  commands: { run: runCommand },
  defaultCommand: "run",
});
