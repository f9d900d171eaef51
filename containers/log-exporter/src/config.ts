// The options of log-exporter. Precedence: flags > env (LOG_EXPORTER_*) > config file > defaults.
// The per-job settings (sink name, labels, paths, pod logs, multiline) usually come from the
// per-job config file or env; the cluster's sinks come from the sinks file (`--sinks`).
import { byteSize, duration, option, z } from "@buildpod/config";

export const options = {
  logs: option({
    schema: z.string().min(1).default("/logs"),
    description: "directory whose files are all exported, recursively, new files included",
    metavar: "DIR",
  }),
  exclude: option({
    schema: z.array(z.string()).default([]),
    description: "globs (relative to --logs) of files not to export",
    repeatable: true,
    metavar: "GLOB",
  }),
  paths: option({
    schema: z.array(z.string().min(1)).default([]),
    description: "further file paths or globs to export, e.g. /workspace/build/*.log or out/a.log",
    repeatable: true,
    flag: "path",
    metavar: "GLOB",
  }),
  podLogs: option({
    schema: z.boolean().default(false),
    description:
      "also export the workload container's stdout and stderr (pod log stream or CRI files)",
  }),
  criLogDir: option({
    schema: z.string().min(1).optional(),
    description:
      "read the workload's output from the node's CRI log files in this directory instead of the API",
    metavar: "DIR",
  }),
  sinks: option({
    schema: z.string().min(1).optional(),
    description: "cluster sinks file (YAML) naming the sinks and the default; without it: stdout",
    metavar: "FILE",
  }),
  sink: option({
    schema: z.string().min(1).optional(),
    description: "name of the sink in the sinks file to use; default the file's `default`",
    metavar: "NAME",
  }),
  labels: option({
    schema: z.array(z.string().regex(/^[^=]+=/, "KEY=VALUE")).default([]),
    description: "label added to every record, as KEY=VALUE",
    repeatable: true,
    flag: "label",
    metavar: "KEY=VALUE",
  }),
  multilineStart: option({
    schema: z.string().min(1).optional(),
    description:
      "regular expression of a record's first line; other lines join the record before them",
    metavar: "REGEX",
  }),
  multilineTimeout: option({
    schema: duration.prefault("2s"),
    description: "how long a multiline record waits for more lines before it is sent",
    metavar: "DURATION",
  }),
  multilineMaxLines: option({
    schema: z.number().int().min(2).default(500),
    description: "a multiline record is sent once it has this many lines",
    metavar: "N",
  }),
  stateDir: option({
    schema: z.string().min(1).optional(),
    description: "checkpoints and stream positions; default <lifecycle dir>/log-exporter",
    metavar: "DIR",
  }),
  deadLetterFile: option({
    schema: z.string().min(1).optional(),
    description:
      "where records a sink rejected for good are written; default <state dir>/dead-letter.ndjson",
    metavar: "FILE",
  }),
  maxLineBytes: option({
    schema: byteSize.prefault("1MiB"),
    description: "longer lines are delivered in pieces of this size, flagged `split`",
    metavar: "SIZE",
  }),
  // Room for the four batches in flight (the defaults below), and no more: what is read ahead
  // is what the peak RSS grows with, about 3 MiB per MiB (issue 5's benchmark, 1 GiB: 94 MiB
  // with these defaults; 3 batches of 2 MiB and 8 MiB read ahead, 103). The price is speed
  // into a far sink, which grows with the bytes in flight: 69 MiB/s into a receiver that
  // answers every request 50 ms late, 94 with 8 MiB. Raise both for such a sink.
  maxBufferedBytes: option({
    schema: byteSize.prefault("5MiB"),
    description: "bytes read but not yet delivered; reading pauses at this bound (memory cap)",
    metavar: "SIZE",
  }),
  batchBytes: option({
    schema: byteSize.prefault("1280KiB"),
    description: "records are sent once a batch holds this many bytes",
    metavar: "SIZE",
  }),
  flushInterval: option({
    schema: duration.prefault("1s"),
    description: "a smaller batch is sent after this long without new lines",
    metavar: "DURATION",
  }),
  concurrency: option({
    schema: z.number().int().min(1).max(16).default(4),
    description: "batches in flight to the sink at once",
    metavar: "N",
  }),
  pollInterval: option({
    schema: duration.prefault("1s"),
    description: "how often open files are checked for growth, rotation and truncation",
    metavar: "DURATION",
  }),
};
