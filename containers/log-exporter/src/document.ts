// Renders a record as one JSON document, by hand, into a ByteWriter. Shared by the
// elasticsearch, file and stdout sinks, so every sink shows the same fields.
//
//   {"@timestamp":"…","message":"…","log":{"file":{"path":"…"},"offset":N,"flags":[…]},
//    "stream":"stdout","kubernetes":{…},"buildkite":{…},"labels":{…}}
//
// Only the timestamp, message, offset and flags vary per line; the rest is precomputed once
// per job (the tail) or once per origin (the `log` head).
import { type ByteWriter, viewOf } from "./bytes.ts";
import {
  FLAG_NAMES,
  Flag,
  type LineBlock,
  type LogRecord,
  type Origin,
  type RecordMeta,
} from "./record.ts";

/** The fixed bytes of one line block's documents, around the message and the offset. */
interface BlockParts {
  block: LineBlock;
  /** `{"@timestamp":"…","message":"` */
  open: Buffer;
  /** `"` closing the message, then the `log` head up to the offset value. */
  middle: Buffer;
  /** After the offset (and flags): the static fields and the closing braces. */
  close: Buffer;
  /** The block's bytes as a DataView, for the escaping loop. */
  view: DataView;
}

/** Precomputes a job's static fields and renders records as JSON documents. */
export class DocumentEncoder {
  readonly #tail: string;
  readonly #heads = new WeakMap<Origin, string>();
  #lastMs = Number.NaN;
  #lastTs = "";

  #tailBytes: Buffer;
  #parts: BlockParts | undefined;

  /** Bytes of the static fields each document ends with (and the line end after it). */
  get tailLength(): number {
    return this.#tailBytes.length;
  }

  readonly #before: string;

  /**
   * `lineEnds` are written around each document by `writeLine` (not by `text`): the end of a
   * bulk action line before it, a newline after it. Part of the fixed pieces, they cost no
   * extra copy per line.
   */
  constructor(meta: RecordMeta, lineEnds: { before?: string; after?: string } = {}) {
    this.#tail = `${staticFields(meta)}}`;
    this.#before = lineEnds.before ?? "";
    this.#tailBytes = Buffer.from(this.#tail + (lineEnds.after ?? ""), "utf8");
  }

  /**
   * Writes the document of line `i` of `block`, between the line ends: byte for byte what
   * `text` renders for `blockRecord(block, i)`, but straight from the file's bytes, without a
   * string or an object per line. Call it for the lines of one block in a row: the fixed parts
   * are made once per block.
   */
  writeLine(w: ByteWriter, block: LineBlock, i: number): void {
    const parts = this.#partsOf(block);
    const start = block.starts[i] as number;
    const end = block.ends[i] as number;
    const flags = block.flags[i] as number;
    w.raw(parts.open);
    if ((flags & Flag.REPLACED) === 0) w.jsonEscaped(block.data, parts.view, start, end);
    else w.text(quote(block.data.toString("utf8", start, end)).slice(1, -1));
    w.raw(parts.middle);
    w.decimal(block.base + start);
    if (flags !== 0) w.ascii(flagsJson(flags));
    w.raw(parts.close);
  }

  #partsOf(block: LineBlock): BlockParts {
    if (this.#parts?.block === block) return this.#parts;
    const time = this.#timestamp(block.time);
    this.#parts = {
      block,
      open: Buffer.from(`${this.#before}{"@timestamp":"${time}","message":"`, "latin1"),
      middle: Buffer.from(`"${this.#head(block.origin)}`, "utf8"),
      close: this.#tailBytes,
      view: viewOf(block.data),
    };
    return this.#parts;
  }

  /**
   * The document for `record` (no trailing newline), as a string: V8 joins string pieces
   * without copying (ropes), so building a batch by concatenation and encoding it to UTF-8
   * once is cheaper than many small buffer writes.
   */
  text(record: LogRecord): string {
    const time = record.timeText ?? this.#timestamp(record.time);
    const flags = record.flags === 0 ? "" : flagsJson(record.flags);
    return `{"@timestamp":"${time}","message":${quote(record.message)}${this.#head(record.origin)}${record.offset}${flags}${this.#tail}`;
  }

  /** Writes the document for `record` (no trailing newline). */
  write(w: ByteWriter, record: LogRecord): void {
    w.text(this.text(record));
  }

  /** `,"log":{…,"offset":` up to the offset value, with the origin's path and stream. */
  #head(origin: Origin): string {
    let head = this.#heads.get(origin);
    if (head === undefined) {
      const file =
        origin.path === undefined ? "" : `"file":{"path":${JSON.stringify(origin.path)}},`;
      const stream = origin.stream === undefined ? "" : `"stream":"${origin.stream}",`;
      head = `,${stream}"log":{${file}"offset":`;
      this.#heads.set(origin, head);
    }
    return head;
  }

  /** ISO 8601 text of a millisecond time; consecutive lines mostly share it, so cache one. */
  #timestamp(ms: number): string {
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastTs = new Date(ms).toISOString();
    }
    return this.#lastTs;
  }
}

/**
 * A JSON string literal. V8's JSON.stringify of a lone string is a fast native scan-and-copy;
 * what caps a core at ~45 MiB/s (issue 5) is stringifying an object per line, which the
 * precomputed document parts above avoid. Measured here: a regular-expression pre-check for
 * characters to escape was slower than quoting every line outright.
 */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** `,"flags":["truncated",…]` inside the `log` object. */
function flagsJson(flags: number): string {
  const names = FLAG_NAMES.filter((_, bit) => (flags & (1 << bit)) !== 0);
  return `,"flags":${JSON.stringify(names)}`;
}

/** `},"kubernetes":{…},"buildkite":{…},"labels":{…}` — the part after the `log` object. */
function staticFields(meta: RecordMeta): string {
  const fields = metaFields(meta);
  return `}${Object.entries(fields)
    .map(([key, value]) => `,${JSON.stringify(key)}:${JSON.stringify(value)}`)
    .join("")}`;
}

/** The job's static fields as nested objects (`kubernetes`, `buildkite`, `labels`), empty ones left out. */
export function metaFields(meta: RecordMeta): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const k = meta.kubernetes ?? {};
  const kube = compact({
    namespace: k.namespace,
    pod: compact({ name: k.podName }),
    container: compact({ name: k.containerName }),
  });
  if (kube) out.kubernetes = kube;
  const b = meta.buildkite ?? {};
  const bk = compact({
    job_id: b.jobId,
    build_id: b.buildId,
    pipeline: b.pipeline,
    step_key: b.stepKey,
    organization: b.organization,
  });
  if (bk) out.buildkite = bk;
  if (meta.labels && Object.keys(meta.labels).length > 0) out.labels = meta.labels;
  return out;
}

/** The object without undefined or empty values, or undefined when nothing is left. */
function compact(o: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) {
    if (value !== undefined && value !== "") out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
