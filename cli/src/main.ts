import { main } from "@buildpod/runtime";
import { render } from "./commands/render.ts";
import { run } from "./commands/run.ts";

main({
  name: "buildpod",
  description: "renders a BuildEnvironment into Kubernetes objects, or runs it as a local pod",
  envPrefix: "BUILDPOD_CLI",
  commands: { run, render },
});
