import { main } from "@buildpod/runtime";

// Placeholder until the container lands: --help says so and a run exits 1.
main({
  name: "agent-injector",
  description: "see README.md",
  envPrefix: "AGENT_INJECTOR",
  commands: {},
  notBuilt: "this container is being built; see its issue",
});
