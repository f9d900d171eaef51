import type { Program } from "@buildpod/runtime";
import { download } from "./run.ts";

/** The artifact-downloader program: one command, `download`, run as an init container. */
export const program: Program = {
  name: "artifact-downloader",
  description: "downloads a build's Buildkite artifacts into the pod before the workload starts",
  envPrefix: "ARTIFACT_DOWNLOADER",
  commands: { download },
  defaultCommand: "download",
};
