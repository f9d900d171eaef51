import { main } from "@buildpod/runtime";

// Placeholder until the container lands: --help says so and a run exits 1.
main({
  name: "repo-mirror",
  description: "see README.md",
  envPrefix: "REPO_MIRROR",
  commands: {},
  notBuilt: "this container is being built; see its issue",
});
