// The record model: one line (or one joined multi-line event) read from a source, plus the
// static metadata every record of this job carries.

import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";

/** Bit flags on a record; rendered as `log.flags` (the Beats field). */
export const Flag = {
  /** The line was longer than the limit and was cut. */
  TRUNCATED: 1,
  /** The line was not valid UTF-8; invalid bytes were replaced with U+FFFD. */
  REPLACED: 2,
  /** Several lines were joined into this record by the multiline rule. */
  MULTILINE: 4,
  /** The record is one piece of a line split to fit a sink's entry limit. */
  SPLIT: 8,
} as const;

/** `log.flags` names, in bit order. */
export const FLAG_NAMES = ["truncated", "replaced_bytes", "multiline", "split"] as const;

/** Where a record came from. One object per file (or stream), shared by its records. */
export interface Origin {
  /** `log.file.path` for files; absent for the pod log stream. */
  readonly path?: string;
  /** `stream` (`stdout`/`stderr`) for container output; absent for files. */
  readonly stream?: "stdout" | "stderr";
  /**
   * A short stable key for this origin's content (job, file identity, truncation generation):
   * the record id is `<key>-<offset>`, so the same line always gets the same id and a retried
   * create never indexes it twice.
   */
  readonly key: string;
}

/** One log record. */
export interface LogRecord {
  readonly origin: Origin;
  /** The line without its newline. */
  message: string;
  /** Byte offset of the line in its file, or the ordinal of the line in a stream. */
  readonly offset: number;
  /** Milliseconds since the epoch: when it was written (stream timestamps) or read. */
  readonly time: number;
  /** The source's own RFC 3339 timestamp text, when it has one finer than milliseconds. */
  readonly timeText?: string;
  /** `Flag` bits. */
  flags: number;
  /** The record id when it is not `<origin key>-<offset>` (streams without byte offsets). */
  id?: string;
}

/**
 * The records of one read of a file, kept as the file's bytes: line `i` is
 * `data[starts[i], ends[i])`, at file offset `base + starts[i]`. No object and no string per
 * line until a sink asks for one (`blockRecord`): per-line objects were what grew V8's young
 * generation to 128 MiB in issue 5's benchmark. Every line of a block shares its origin and
 * its read time.
 */
export interface LineBlock {
  readonly origin: Origin;
  /** Milliseconds since the epoch when the block was read. */
  readonly time: number;
  /** File offset of `data[0]`. */
  readonly base: number;
  readonly data: Buffer;
  readonly count: number;
  readonly starts: Uint32Array;
  readonly ends: Uint32Array;
  /** `Flag` bits of each line. */
  readonly flags: Uint8Array;
}

/** What a source hands over at once: record objects, or a block of lines as bytes. */
export type Records = readonly LogRecord[] | LineBlock;

/** Whether `records` is a line block. */
export function isBlock(records: Records): records is LineBlock {
  return "data" in records;
}

/** How many records there are. */
export function recordCount(records: Records): number {
  return isBlock(records) ? records.count : records.length;
}

/** Line `i` of a block as a record object (its message decoded, U+FFFD for invalid bytes). */
export function blockRecord(block: LineBlock, i: number): LogRecord {
  const start = block.starts[i] as number;
  return {
    origin: block.origin,
    message: block.data.toString("utf8", start, block.ends[i]),
    offset: block.base + start,
    time: block.time,
    flags: block.flags[i] as number,
  };
}

/** The records as objects (made here for a line block). */
export function recordsOf(records: Records): readonly LogRecord[] {
  if (!isBlock(records)) return records;
  const out: LogRecord[] = new Array(records.count);
  for (let i = 0; i < records.count; i++) out[i] = blockRecord(records, i);
  return out;
}

/** The static fields every record of one job carries (`kubernetes.*`, `buildkite.*`, labels). */
export interface RecordMeta {
  kubernetes?: { namespace?: string; podName?: string; containerName?: string };
  buildkite?: {
    jobId?: string;
    buildId?: string;
    pipeline?: string;
    stepKey?: string;
    organization?: string;
  };
  labels?: Record<string, string>;
}

/** Reads the job's metadata from the Buildkite and Kubernetes environment variables. */
export function metaFromEnv(
  env: Record<string, string | undefined>,
  labels: Record<string, string> = {},
  containerName?: string,
): RecordMeta {
  return {
    kubernetes: {
      namespace: env.POD_NAMESPACE ?? env.KUBERNETES_NAMESPACE,
      podName: env.POD_NAME ?? env.HOSTNAME,
      containerName,
    },
    buildkite: {
      jobId: env.BUILDKITE_JOB_ID,
      buildId: env.BUILDKITE_BUILD_ID,
      pipeline: env.BUILDKITE_PIPELINE_SLUG,
      stepKey: env.BUILDKITE_STEP_KEY,
      organization: env.BUILDKITE_ORGANIZATION_SLUG,
    },
    labels,
  };
}

/** The record id: unique per line, the same on every retry and after a restart. */
export function recordId(record: LogRecord): string {
  return record.id ?? `${record.origin.key}-${record.offset.toString(36)}`;
}

/**
 * An origin key: 16 base64url characters of SHA-256 over the parts (job id, file identity,
 * generation). Computed once per file, not per line.
 */
export function originKey(...parts: (string | number | undefined)[]): string {
  const hash = createHash("sha256");
  for (const p of parts) hash.update(`${p ?? ""}\u0000`);
  return hash.digest("base64url").slice(0, 16);
}

/**
 * Decodes a line read as bytes (the pod log stream, CRI files): invalid UTF-8 is replaced with
 * U+FFFD and flagged. File lines come decoded and flagged by @buildpod/volume-watch already.
 */
export function decodeLine(bytes: Buffer): { message: string; flags: number } {
  const flags = isUtf8(bytes) ? 0 : Flag.REPLACED;
  return { message: bytes.toString("utf8"), flags };
}
