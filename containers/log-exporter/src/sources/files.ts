// The file source: every file under a directory (the logs volume, the base of a configured
// glob, or a node's CRI log directory), tailed by @buildpod/volume-watch's Tailer with
// checkpoints that move only when the pipeline commits.
//
// Record ids are `<origin key>-<start offset>`. The origin key hashes the job, the file's
// identity (dev:ino) and a generation that changes when the file is truncated (or its inode
// reused) while we run, so rewritten content never collides with ids already in the sink. The
// generations are kept in a small JSON file beside the checkpoints.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type LineBatch,
  LineFlags,
  type RawLines,
  Tailer,
  type TailerOptions,
  type VolumeWatchWarning,
} from "@buildpod/volume-watch";
import type { Envelope } from "../pipeline.ts";
import { type LineBlock, type Origin, originKey } from "../record.ts";
import {
  Assembler,
  type MultilineOptions,
  type ParsedLine,
  parseCriLine,
  recordFlags,
} from "./assemble.ts";

export interface FileSourceOptions {
  /** Shown in logs: `logs`, `glob /workspace/build/*.log`, `cri`. */
  name: string;
  root: string;
  include?: string[];
  exclude?: string[];
  /** Tailer checkpoint file; the generations file sits beside it. */
  checkpointFile: string;
  /** Part of every origin key: the job id (or another run-stable id). */
  jobKey: string;
  maxLineBytes: number;
  maxBufferedBytes: number;
  pollIntervalMs?: number;
  multiline?: MultilineOptions;
  /** Parse lines as CRI container log lines and join `P` segments. */
  cri?: boolean;
  onWarning?(warning: VolumeWatchWarning): void;
  onFile?(event: { type: string; path: string }): void;
}

/** A tailed tree as an async stream of envelopes. */
export class FileSource {
  readonly options: FileSourceOptions;
  readonly tailer: Tailer;
  readonly #generationsFile: string;
  #generations: Record<string, number> = {};
  /** fileId -> end offset of the last batch seen, to notice truncation by offset regression. */
  readonly #lastEnd = new Map<string, number>();
  readonly #closedIds = new Set<string>();
  readonly #origins = new Map<string, Origin>();
  readonly #assemblers = new Map<string, Assembler>();
  #draining = false;
  /** No multiline joining and no CRI parsing: the fast path. */
  readonly #plain: boolean;
  readonly #assemblerFile = new WeakMap<Assembler, LineBatch>();
  /** Buffers of delivered line blocks, reused for the next ones (see `#copy`). */
  readonly #free: Buffer[] = [];

  constructor(options: FileSourceOptions) {
    this.options = options;
    this.#generationsFile = `${options.checkpointFile}.generations.json`;
    this.#plain = options.multiline === undefined && options.cri !== true;
    const tailerOptions: TailerOptions = {
      root: options.root,
      checkpointFile: options.checkpointFile,
      maxLineBytes: options.maxLineBytes,
      maxBufferedBytes: options.maxBufferedBytes,
      startAt: "beginning",
    };
    if (options.include) tailerOptions.include = options.include;
    if (options.exclude) tailerOptions.exclude = options.exclude;
    if (options.pollIntervalMs !== undefined) tailerOptions.pollIntervalMs = options.pollIntervalMs;
    this.tailer = new Tailer(tailerOptions);
    this.tailer.on("warning", (w) => options.onWarning?.(w));
    this.tailer.on("file", (e) => {
      if (e.type === "truncated") this.#bump(e.fileId);
      if (e.type === "opened" && !e.restored && this.#closedIds.has(e.fileId)) this.#bump(e.fileId);
      if (e.type === "closed") this.#closedIds.add(e.fileId);
      options.onFile?.(e);
    });
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.options.checkpointFile), { recursive: true });
    try {
      this.#generations = JSON.parse(readFileSync(this.#generationsFile, "utf8")) as Record<
        string,
        number
      >;
    } catch {
      this.#generations = {};
    }
    await this.tailer.start();
  }

  /** Reads every file to its end (a last line without newline included), then ends. */
  drain(): void {
    this.#draining = true;
    this.tailer.drain();
  }

  async close(): Promise<void> {
    await this.tailer.close();
  }

  /** Envelopes until the drain has delivered everything. */
  async *envelopes(): AsyncGenerator<Envelope> {
    if (this.#plain) {
      for (let raw = await this.tailer.nextRaw(); raw; raw = await this.tailer.nextRaw()) {
        yield this.#blockEnvelope(raw);
      }
      return;
    }
    const pending: Promise<LineBatch | undefined>[] = [];
    for (;;) {
      // With records held for joining, wake up for the flush timeout too.
      const next = pending.shift() ?? this.tailer.next();
      const wait = this.#flushWait();
      const batch = wait === undefined ? await next : await Promise.race([next, wait]);
      if (batch === FLUSH) {
        pending.push(next);
        for (const a of this.#assemblers.values()) a.flush((s) => this.#originFor(a, s));
        yield* this.#take();
        continue;
      }
      if (batch === undefined) break;
      this.#read(batch);
      yield* this.#take();
    }
    // The drain: emit whatever is still held, then acknowledge it all.
    for (const a of this.#assemblers.values()) a.flush((s) => this.#originFor(a, s));
    yield* this.#take();
  }

  /**
   * The fast path (no joining): the lines stay bytes, copied out of the tailer's read buffer
   * into a block, one record per line; the whole batch is acked at once.
   */
  #blockEnvelope(raw: RawLines): Envelope {
    this.#noticeTruncation(raw);
    const count = raw.count;
    const data = this.#copy(raw.data);
    const flags = raw.flags.slice(0, count);
    const ends = raw.ends.slice(0, count);
    for (let i = 0; i < count; i++) {
      const f = flags[i] as number;
      // A CRLF line's newline is both bytes: the message ends before its `\r`.
      const end = ends[i] as number;
      if (endsLine(f) && end > (raw.starts[i] as number) && data[end - 1] === CR) ends[i] = end - 1;
      if (f !== 0) flags[i] = recordFlags(f);
    }
    const block: LineBlock = {
      origin: this.#origin(raw, undefined),
      time: Date.now(),
      base: raw.startOffset,
      data,
      count,
      starts: raw.starts.slice(0, count),
      ends,
      flags,
    };
    const tailer = this.tailer;
    return {
      records: block,
      bytes: data.length + 64 * count,
      commit: () => tailer.ack(raw),
      release: () => this.#release(data),
    };
  }

  /**
   * A copy of a read's bytes, in a buffer of a delivered block when one is free: blocks come
   * and go at the rate of reading, and fresh megabyte buffers would wait for V8 to collect
   * them, growing the RSS (issue 5).
   */
  #copy(bytes: Buffer): Buffer {
    if (bytes.length > BLOCK_BYTES) return Buffer.from(bytes);
    const buf = this.#free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES);
    bytes.copy(buf);
    return buf.subarray(0, bytes.length);
  }

  #release(data: Buffer): void {
    const whole = Buffer.from(data.buffer, data.byteOffset, data.buffer.byteLength);
    if (whole.length === BLOCK_BYTES && this.#free.length < MAX_FREE_BLOCKS) this.#free.push(whole);
  }

  #noticeTruncation(batch: LineBatch | RawLines): void {
    const last = this.#lastEnd.get(batch.fileId);
    if (last !== undefined && batch.startOffset < last) this.#bump(batch.fileId);
    this.#lastEnd.set(batch.fileId, batch.endOffset);
  }

  #read(batch: LineBatch): void {
    this.#noticeTruncation(batch);

    const key = batch.fileId;
    let assembler = this.#assemblers.get(key);
    if (!assembler) {
      assembler = new Assembler({ multiline: this.options.multiline, cri: this.options.cri });
      this.#assemblers.set(key, assembler);
      this.#assemblerFile.set(assembler, batch);
    }
    this.#assemblerFile.set(assembler, batch);
    const origins = new Map<string, Origin>();
    assembler.push(batch, this.#parse(batch), (stream) => {
      let origin = origins.get(stream ?? "");
      if (!origin) {
        origin = this.#origin(batch, stream);
        origins.set(stream ?? "", origin);
      }
      return origin;
    });
  }

  #parse(batch: LineBatch): ParsedLine[] {
    const now = Date.now();
    const out: ParsedLine[] = new Array(batch.lines.length);
    let start = batch.startOffset;
    for (let i = 0; i < batch.lines.length; i++) {
      const line = batch.lines[i] as LineBatch["lines"][number];
      const crlf = !this.options.cri && endsLine(line.flags) && line.text.endsWith("\r");
      const parsed: ParsedLine = {
        text: crlf ? line.text.slice(0, -1) : line.text,
        start,
        end: line.offset,
        flags: recordFlags(line.flags),
        time: now,
      };
      if (this.options.cri) {
        const cri = parseCriLine(line.text);
        parsed.text = cri.message;
        parsed.stream = cri.stream;
        parsed.tag = cri.tag;
        if (cri.time !== undefined) {
          parsed.time = cri.time;
          parsed.timeText = cri.timeText;
        }
      }
      out[i] = parsed;
      start = line.offset;
    }
    return out;
  }

  *#take(): Generator<Envelope> {
    for (const assembler of this.#assemblers.values()) {
      const { records, acks } = assembler.take();
      if (records.length === 0 && acks.length === 0) continue;
      let bytes = 0;
      for (const r of records) bytes += r.message.length + 64;
      const tailer = this.tailer;
      yield {
        records,
        bytes,
        commit: () => {
          for (const [batch, upTo] of acks) tailer.ack(batch, upTo);
        },
      };
    }
  }

  #flushWait(): Promise<typeof FLUSH> | undefined {
    const ml = this.options.multiline;
    let since: number | undefined;
    for (const a of this.#assemblers.values()) {
      const s = a.heldSince();
      if (s !== undefined) since = since === undefined ? s : Math.min(since, s);
    }
    if (since === undefined || this.#draining) return undefined;
    const timeoutMs = ml?.timeoutMs ?? 2000;
    const delay = Math.max(0, since + timeoutMs - Date.now());
    return new Promise((resolve) => setTimeout(() => resolve(FLUSH), delay).unref());
  }

  #originFor(assembler: Assembler, stream?: "stdout" | "stderr"): Origin {
    return this.#origin(this.#assemblerFile.get(assembler) as LineBatch, stream);
  }

  /** The origin of a batch's records (cached per file, generation, path and stream). */
  #origin(batch: LineBatch | RawLines, stream: "stdout" | "stderr" | undefined): Origin {
    const generation = this.#generations[batch.fileId] ?? 0;
    const path = join(this.options.root, batch.path);
    const cacheKey = `${batch.fileId}\u0000${generation}\u0000${path}\u0000${stream ?? ""}`;
    let origin = this.#origins.get(cacheKey);
    if (!origin) {
      const key = originKey(this.options.jobKey, this.options.root, batch.fileId, generation);
      origin = stream === undefined ? { path, key } : { path, key, stream };
      this.#origins.set(cacheKey, origin);
    }
    return origin;
  }

  /** A new generation for a file whose offsets start over (truncated, inode reused). */
  #bump(fileId: string): void {
    this.#generations[fileId] = (this.#generations[fileId] ?? 0) + 1;
    this.#lastEnd.delete(fileId);
    writeFileSync(this.#generationsFile, JSON.stringify(this.#generations));
  }
}

const FLUSH = Symbol("flush");
/** Size of a pooled block buffer: a read (1 MiB) and a partial line carried into it. */
const BLOCK_BYTES = 1024 * 1024 + 64 * 1024;
/** Free block buffers kept at most (16 MiB): more are left to the garbage collector. */
const MAX_FREE_BLOCKS = 16;

const CR = 0x0d;

/** Whether a line (or the piece of one) ends at the line's newline. */
function endsLine(flags: number): boolean {
  if ((flags & LineFlags.NO_NEWLINE) !== 0) return false;
  return (flags & LineFlags.SPLIT) === 0 || (flags & LineFlags.SPLIT_END) !== 0;
}
