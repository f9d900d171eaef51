// Turning a file's lines into records: one record per line (the fast path), or joined records
// (multiline events; CRI `P` segments up to their `F`). A joined record can span batches, so
// the assembler also tracks how far each batch may be acknowledged: never past the first line
// of a record it still holds.
import type { LineBatch } from "@buildpod/volume-watch";
import { LineFlags } from "@buildpod/volume-watch";
import { Flag, type LogRecord, type Origin } from "../record.ts";

/** How lines of one source join into records. */
export interface MultilineOptions {
  /** A line matching this starts a new record; other lines continue the current one. */
  firstLine: RegExp;
  /** A held record is emitted after this long without a continuation line. */
  timeoutMs: number;
  /** A record is emitted once it has this many lines. */
  maxLines: number;
}

/** A parsed line, before it becomes (part of) a record. */
export interface ParsedLine {
  text: string;
  /** Where the record this line starts would begin (the line's own start offset). */
  start: number;
  /** Offset after the line: acknowledging it commits the line. */
  end: number;
  flags: number;
  time: number;
  timeText?: string;
  stream?: "stdout" | "stderr";
  /** CRI: `P` (partial, more follows) or `F` (full, ends the line). */
  tag?: "P" | "F";
}

/** Maps volume-watch line flags to record flags. */
export function recordFlags(lineFlags: number): number {
  let flags = 0;
  if ((lineFlags & LineFlags.SPLIT) !== 0) flags |= Flag.SPLIT;
  if ((lineFlags & LineFlags.INVALID_UTF8) !== 0) flags |= Flag.REPLACED;
  return flags;
}

interface Held {
  first: ParsedLine;
  parts: string[];
  lines: number;
  flags: number;
  joiner: string;
  since: number;
}

/**
 * Joins parsed lines of ONE file into records and says how far the file's batches may be
 * acknowledged. `push` a batch's lines, `take` the completed records with their acks.
 */
export class Assembler {
  readonly #multiline: MultilineOptions | undefined;
  readonly #cri: boolean;
  /** Records held per stream key ("" for plain files, the CRI stream otherwise). */
  readonly #held = new Map<string, Held>();
  #done: LogRecord[] = [];
  /** Batches read but not yet acknowledged in full, oldest first. */
  readonly #batches: LineBatch[] = [];

  constructor(options: { multiline?: MultilineOptions; cri?: boolean }) {
    this.#multiline = options.multiline;
    this.#cri = options.cri === true;
  }

  /** Adds the lines of one batch. */
  push(
    batch: LineBatch,
    lines: ParsedLine[],
    origin: (stream?: "stdout" | "stderr") => Origin,
  ): void {
    this.#batches.push(batch);
    for (const line of lines) this.#line(line, origin);
  }

  /** Whether a record is held waiting for more lines. */
  holding(): boolean {
    return this.#held.size > 0;
  }

  /** The oldest time a held record started waiting, for the flush timeout. */
  heldSince(): number | undefined {
    let since: number | undefined;
    for (const h of this.#held.values())
      since = since === undefined ? h.since : Math.min(since, h.since);
    return since;
  }

  /** Emits every held record (flush timeout, drain). */
  flush(origin: (stream?: "stdout" | "stderr") => Origin): void {
    for (const key of [...this.#held.keys()]) this.#emit(key, origin);
  }

  /**
   * The completed records and the acknowledgements that commit exactly them: every batch
   * wholly before the first held line, and a prefix of the batch holding it.
   */
  take(): { records: LogRecord[]; acks: [LineBatch, number | undefined][] } {
    const records = this.#done;
    this.#done = [];
    let frontier = Number.POSITIVE_INFINITY;
    for (const h of this.#held.values()) frontier = Math.min(frontier, h.first.start);
    const acks: [LineBatch, number | undefined][] = [];
    while (this.#batches.length > 0) {
      const batch = this.#batches[0] as LineBatch;
      if (batch.endOffset <= frontier || frontier === Number.POSITIVE_INFINITY) {
        acks.push([batch, undefined]);
        this.#batches.shift();
        continue;
      }
      // The frontier lies inside this batch: acknowledge up to the line ending there.
      if (frontier > batch.startOffset) acks.push([batch, frontier]);
      break;
    }
    return { records, acks };
  }

  #line(line: ParsedLine, origin: (stream?: "stdout" | "stderr") => Origin): void {
    const key = this.#cri ? (line.stream ?? "") : "";
    const held = this.#held.get(key);
    if (this.#cri) {
      // CRI: P segments join (without newline) up to the F that ends the line.
      if (held) {
        held.parts.push(line.text);
        held.flags |= line.flags;
      } else this.#hold(key, line, "");
      if (line.tag !== "P") this.#emit(key, origin);
      return;
    }
    const ml = this.#multiline;
    if (!ml) {
      this.#done.push(toRecord(line, line.text, line.flags, origin()));
      return;
    }
    if (held && !ml.firstLine.test(line.text)) {
      held.parts.push(line.text);
      held.lines++;
      held.flags |= line.flags | Flag.MULTILINE;
      if (held.lines >= ml.maxLines) this.#emit(key, origin);
      return;
    }
    if (held) this.#emit(key, origin);
    this.#hold(key, line, "\n");
  }

  #hold(key: string, line: ParsedLine, joiner: string): void {
    this.#held.set(key, {
      first: line,
      parts: [line.text],
      lines: 1,
      flags: line.flags,
      joiner,
      since: Date.now(),
    });
  }

  #emit(key: string, origin: (stream?: "stdout" | "stderr") => Origin): void {
    const held = this.#held.get(key);
    if (!held) return;
    this.#held.delete(key);
    this.#done.push(
      toRecord(held.first, held.parts.join(held.joiner), held.flags, origin(held.first.stream)),
    );
  }
}

function toRecord(line: ParsedLine, message: string, flags: number, origin: Origin): LogRecord {
  const record: LogRecord = { origin, message, offset: line.start, time: line.time, flags };
  if (line.timeText !== undefined) (record as { timeText?: string }).timeText = line.timeText;
  return record;
}

/**
 * Parses a CRI log line (`<RFC3339Nano> <stdout|stderr> <P|F[:more]> <message>`, kubelet
 * `parseCRILog`). A line that does not parse is kept whole as a stdout `F` line.
 */
export function parseCriLine(text: string): {
  time?: number;
  timeText?: string;
  stream: "stdout" | "stderr";
  tag: "P" | "F";
  message: string;
} {
  const s1 = text.indexOf(" ");
  const s2 = s1 < 0 ? -1 : text.indexOf(" ", s1 + 1);
  const s3 = s2 < 0 ? -1 : text.indexOf(" ", s2 + 1);
  const stream = text.slice(s1 + 1, s2);
  if (s1 < 0 || s2 < 0 || (stream !== "stdout" && stream !== "stderr")) {
    return { stream: "stdout", tag: "F", message: text };
  }
  const timeText = text.slice(0, s1);
  const time = Date.parse(timeText);
  const tags = text.slice(s2 + 1, s3 < 0 ? undefined : s3);
  const tag = tags.split(":")[0] === "P" ? "P" : "F";
  const message = s3 < 0 ? "" : text.slice(s3 + 1);
  return {
    time: Number.isNaN(time) ? undefined : time,
    timeText: Number.isNaN(time) ? undefined : timeText,
    stream,
    tag,
    message,
  };
}
