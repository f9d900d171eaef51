import { main } from "@buildpod/runtime";
import { checkout } from "./checkout.ts";
import { sync } from "./sync.ts";

main({
  name: "repo-mirror",
  description:
    "puts the job's repository into the workspace from a mirror cache, and keeps the cache fresh",
  envPrefix: "REPO_MIRROR",
  commands: { checkout, sync },
  defaultCommand: "checkout",
});
