import type { Program } from "@buildpod/runtime";
import { watch } from "./run.ts";

/** The artifact-uploader program: one command, `watch`, run as a sidecar. */
export const program: Program = {
  name: "artifact-uploader",
  description: "uploads the files the workload leaves in a directory as Buildkite artifacts",
  envPrefix: "ARTIFACT_UPLOADER",
  commands: { watch },
  defaultCommand: "watch",
};
