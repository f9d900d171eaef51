import { storeOptions } from "@buildpod/artifact-store";
import { duration, type Options, option, z } from "@buildpod/config";

/**
 * The artifact-downloader's options. Each has a flag (kebab-case key) and an env var
 * (`ARTIFACT_DOWNLOADER_<KEY>`); the Buildkite job env names are read as aliases, so the
 * container works from the job env alone. A config file (`--config`, e.g. a per-job ConfigMap)
 * may hold the same keys: `query: ["dist/**"]`, `step: build`, `required: true`.
 */
export const options = {
  query: option({
    schema: z.array(z.string().min(1)).default([]),
    description: "glob of artifact paths to download",
    repeatable: true,
    metavar: "GLOB",
  }),
  step: option({
    schema: z.string().min(1).optional(),
    description: "only artifacts of this step (key, label or job ID)",
    metavar: "KEY",
  }),
  build: option({
    schema: z.string().min(1).optional(),
    description: "build whose artifacts are searched; default $BUILDKITE_BUILD_ID",
    aliases: ["BUILDKITE_BUILD_ID"],
    metavar: "ID",
  }),
  includeRetriedJobs: option({
    schema: z.boolean().default(false),
    description: "also search artifacts of jobs that were retried",
    aliases: ["BUILDKITE_AGENT_INCLUDE_RETRIED_JOBS"],
  }),
  required: option({
    schema: z.boolean().default(false),
    description: "fail (exit 1) when a query matches no artifact, instead of warning",
  }),
  dest: option({
    schema: z.string().min(1).default("/artifacts-imported"),
    description: "directory the artifacts are written to, keeping their relative paths",
    metavar: "DIR",
  }),
  ...storeOptions("come from"),
  concurrency: option({
    schema: z.number().int().min(1).max(256).default(16),
    description: "downloads in flight at once",
    metavar: "N",
  }),
  requestTimeout: option({
    schema: duration.prefault("30s"),
    description: "bound of each API call and of each idle wait on a download",
    metavar: "DURATION",
  }),
  progressInterval: option({
    schema: duration.prefault("5s"),
    description: "how often a progress line (files, bytes, rate) is logged; 0 turns them off",
    metavar: "DURATION",
  }),
} satisfies Options;
