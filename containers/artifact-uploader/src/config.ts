import { storeOptions } from "@buildpod/artifact-store";
import {
  describeSource,
  duration,
  envName,
  flagName,
  type Options,
  option,
  type Source,
  z,
} from "@buildpod/config";

/**
 * Left out by default: editor swap and backup files, temp and partial downloads, and the
 * temp files of buildpod's own writers. Give `--exclude` to replace the list.
 */
export const DEFAULT_EXCLUDES = [
  "**/*.swp",
  "**/*.swo",
  "**/*.swx",
  "**/*~",
  "**/.#*",
  "**/#*#",
  "**/*.tmp",
  "**/*.temp",
  "**/*.part",
  "**/*.partial",
  "**/*.crdownload",
  "**/.DS_Store",
  "**/.buildpod-partial-*",
];

/**
 * The artifact-uploader's options. Each has a flag (kebab-case key) and an env var
 * (`ARTIFACT_UPLOADER_<KEY>`); the Buildkite job env names are read as aliases.
 */
export const options = {
  root: option({
    schema: z.string().min(1).default("/artifacts"),
    description: "directory watched; each complete file below it becomes an artifact",
    metavar: "DIR",
  }),
  include: option({
    schema: z.array(z.string().min(1)).default(["**"]),
    description: "glob (relative to the root) a file must match to be uploaded",
    repeatable: true,
    metavar: "GLOB",
  }),
  exclude: option({
    schema: z.array(z.string().min(1)).default(DEFAULT_EXCLUDES),
    description: "glob of files never uploaded; default editor, temp and partial files",
    repeatable: true,
    metavar: "GLOB",
  }),
  quietPeriod: option({
    schema: duration.prefault("2s"),
    description: "a file is complete once its size and mtime stayed the same this long",
    metavar: "DURATION",
  }),
  poll: option({
    schema: z.boolean().default(false),
    description: "poll with stat instead of inotify (network filesystems without events)",
  }),
  ...storeOptions("go"),
  job: option({
    schema: z.string().min(1).optional(),
    description: "job the artifacts belong to; default $BUILDKITE_JOB_ID",
    aliases: ["BUILDKITE_JOB_ID"],
    metavar: "ID",
  }),
  contentType: option({
    schema: z.string().min(1).optional(),
    description: "content type of every artifact; default by file extension",
    aliases: ["BUILDKITE_ARTIFACT_CONTENT_TYPE"],
    metavar: "TYPE",
  }),
  concurrency: option({
    schema: z.number().int().min(1).max(256).default(8),
    description: "file transfers in flight within one batch",
    aliases: ["BUILDKITE_ARTIFACT_UPLOAD_CONCURRENCY"],
    metavar: "N",
  }),
  batches: option({
    schema: z.number().int().min(1).max(64).default(4),
    description: "batches (create call + transfers + state update) in flight at once",
    metavar: "N",
  }),
  batchSize: option({
    schema: z.number().int().min(1).max(1000).default(30),
    description: "files per batch create call",
    metavar: "N",
  }),
  noMultipart: option({
    schema: z.boolean().default(false),
    description: "never upload in parts; files above the single-request limit then fail",
    aliases: ["BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD"],
  }),
  requestTimeout: option({
    schema: duration.prefault("30s"),
    description: "bound of each API call and of each idle wait on a transfer",
    metavar: "DURATION",
  }),
  retryDelay: option({
    schema: duration.prefault("5s"),
    description: "wait before a file whose upload failed (API or storage down) is tried again",
    metavar: "DURATION",
  }),
} satisfies Options;

/**
 * For the error of a file too big for one request while multipart uploads are off: what turned
 * them off (`source`, the noMultipart option's) and the flag and env var that turn them back on.
 */
export function noMultipartHint(source?: Source): string {
  const spec = options.noMultipart;
  const flag = `--${flagName("noMultipart", spec)}`;
  const env = envName("noMultipart", spec, "ARTIFACT_UPLOADER");
  const by = source && source.kind !== "default" ? `set by ${describeSource(source)}: ` : "";
  return `${by}give ${flag}=false or ${env}=false to turn them back on, or split the file`;
}
