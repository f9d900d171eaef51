import { main } from "@buildpod/runtime";

// Placeholder until the container lands: --help says so and a run exits 1.
main({
  name: "artifact-uploader",
  description: "see README.md",
  envPrefix: "ARTIFACT_UPLOADER",
  commands: {},
  notBuilt: "this container is being built; see its issue",
});
