import { constants } from "node:fs";
import { type FileHandle, open, realpath } from "node:fs/promises";
import { flushLine, type SplitState, splitLines } from "./line-splitter.ts";
import { Boundaries, splitRaw } from "./raw-splitter.ts";
import { isInside } from "./safety.ts";
import type { Line, LineBatch, RawLines, TailFileEvent } from "./types.ts";

/** Default bytes read per `read()`: big reads are what make tailing fast. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Default longest line delivered in one piece; longer lines are split (`LineFlags.SPLIT`). */
export const DEFAULT_MAX_LINE_BYTES = 256 * 1024;

// Below this a UTF-8 boundary search (3 bytes back) could leave an empty piece.
const MIN_LINE_BYTES = 16;

/** Options of `TailReader.open`. */
export interface TailReaderOptions {
  /** The path reported in batches and events (e.g. relative to a root). Default: as opened. */
  path?: string;
  /** When set, the file must resolve to a path inside this directory, or `open` throws. */
  root?: string;
  /** Byte offset to start reading at, e.g. a restored checkpoint. Default 0. */
  startOffset?: number;
  /** Bytes read per `read()` call. Default `DEFAULT_CHUNK_SIZE` (1 MiB). */
  chunkSize?: number;
  /**
   * Longest line delivered whole, in bytes (at least 16). A longer line is split into pieces of
   * at most this size, cut on UTF-8 character boundaries, each flagged `SPLIT` (the last also
   * `SPLIT_END`); nothing is dropped and tailing goes on. Default `DEFAULT_MAX_LINE_BYTES`.
   */
  maxLineBytes?: number;
  /**
   * A read buffer to use instead of allocating one, at least `chunkSize + maxLineBytes` long.
   * Readers used one at a time (like `Tailer`'s) may share one, keeping memory independent of
   * the number of open files.
   */
  scratch?: Buffer;
  /** Receives "truncated" and "deleted" events of this file. */
  onEvent?: (event: TailFileEvent) => void;
}

/**
 * Reads one file's appended bytes as lines, through one open handle: rotation or deletion of
 * the path does not disturb it (it reads the old file to its end). A partial last line is held
 * back until its newline arrives or `flush()` is called at the drain. Truncation (size below
 * the read position) is detected at end of file: reading restarts at 0 and "truncated" is
 * reported. Invalid UTF-8 is replaced with U+FFFD and the line flagged `INVALID_UTF8`.
 *
 * ```ts
 * const reader = await TailReader.open("/logs/app.log", { startOffset: saved });
 * for (let b = await reader.read(); b; b = await reader.read()) send(b.lines);
 * ```
 */
export class TailReader {
  /** The file's identity `${dev}:${ino}` (of the handle, fixed for the reader's life). */
  readonly fileId: string;
  /** The path reported in batches and events. */
  readonly path: string;

  private readonly handle: FileHandle;
  private readonly scratch: Buffer;
  private readonly chunkSize: number;
  private readonly maxLineBytes: number;
  private readonly onEvent?: (event: TailFileEvent) => void;
  private readonly split: SplitState = { inSplitLine: false };
  private readonly bounds = new Boundaries();
  // Bytes of the partial last line (a private copy: the scratch buffer may be shared).
  private carry: Buffer | null = null;
  private position: number;
  private unlinked = false;
  private closed = false;

  private constructor(
    handle: FileHandle,
    fileId: string,
    path: string,
    options: TailReaderOptions,
  ) {
    this.handle = handle;
    this.fileId = fileId;
    this.path = path;
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.position = options.startOffset ?? 0;
    this.onEvent = options.onEvent;
    this.scratch = options.scratch ?? Buffer.allocUnsafe(this.chunkSize + this.maxLineBytes);
  }

  /**
   * Opens a regular file for tailing (O_NOFOLLOW and O_NONBLOCK on its real path; refuses
   * anything but a regular file, and with `root`, anything resolving outside it).
   * @throws when the file cannot be opened or is refused, or an option is out of range
   */
  static async open(absolutePath: string, options: TailReaderOptions = {}): Promise<TailReader> {
    validate(options);
    const target = await realpath(absolutePath);
    if (options.root !== undefined && !isInside(await realpath(options.root), target)) {
      throw refused(absolutePath, "it resolves outside the root");
    }
    const handle = await open(
      target,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) throw refused(absolutePath, "it is not a regular file");
      const fileId = `${st.dev}:${st.ino}`;
      return new TailReader(handle, fileId, options.path ?? absolutePath, options);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Offset just after the last line delivered: the value a checkpoint stores. */
  get offset(): number {
    return this.position - this.pendingBytes;
  }

  /** Offset of the next byte to read (`offset` plus the held partial line). */
  get readOffset(): number {
    return this.position;
  }

  /** Bytes of the partial last line held back, waiting for its newline or `flush()`. */
  get pendingBytes(): number {
    return this.carry?.length ?? 0;
  }

  /** True once the file was seen unlinked (link count 0); it is still read to its end. */
  get deleted(): boolean {
    return this.unlinked;
  }

  /**
   * Reads the next chunk and returns the complete lines in it. Returns `null` when there was
   * nothing new to read (end of file for now). A batch may hold no lines when the bytes read
   * only extended a partial line.
   */
  async read(): Promise<LineBatch | null> {
    const filled = await this.fill();
    if (!filled) return null;
    const lines: Line[] = [];
    const consumed = splitLines(
      this.scratch,
      filled.end,
      filled.base,
      this.maxLineBytes,
      this.split,
      lines,
    );
    this.hold(consumed, filled.end);
    return this.batch(filled.base, lines);
  }

  /**
   * Like `read`, but returns the lines as bytes and boundaries, without a string or an object
   * per line: the fastest way through a backlog for a consumer that works on bytes. The result
   * is a view of the reader's buffer, valid until the next call (see `RawLines`). `read` and
   * `readRaw` may be mixed; `flush` serves both.
   */
  async readRaw(): Promise<RawLines | null> {
    const filled = await this.fill();
    if (!filled) return null;
    const bounds = this.bounds;
    const consumed = splitRaw(this.scratch, filled.end, this.maxLineBytes, this.split, bounds);
    this.hold(consumed, filled.end);
    return {
      path: this.path,
      fileId: this.fileId,
      startOffset: filled.base,
      endOffset: filled.base + consumed,
      data: this.scratch.subarray(0, consumed),
      count: bounds.count,
      starts: bounds.starts,
      ends: bounds.ends,
      flags: bounds.flags,
    };
  }

  // Puts the held partial line at the start of the buffer and reads one chunk after it.
  // Returns where the buffer's first byte sits in the file and where the data ends, or null
  // at end of file.
  private async fill(): Promise<{ base: number; end: number } | null> {
    const held = this.carry?.length ?? 0;
    if (this.carry) this.carry.copy(this.scratch, 0);
    const { bytesRead } = await this.handle.read(this.scratch, held, this.chunkSize, this.position);
    if (bytesRead === 0) return (await this.checkAtEnd()) ? this.fill() : null;
    const base = this.position - held;
    this.position += bytesRead;
    return { base, end: held + bytesRead };
  }

  // Keeps buf[consumed, end) as the partial line (a copy: the buffer is reused).
  private hold(consumed: number, end: number): void {
    this.carry = consumed < end ? Buffer.from(this.scratch.subarray(consumed, end)) : null;
  }

  /**
   * Delivers the held partial line, flagged `NO_NEWLINE`, and moves `offset` past it. Call it
   * at the drain, after `read()` returned `null`. Returns `null` when nothing is held.
   */
  flush(): LineBatch | null {
    if (!this.carry) return null;
    const base = this.offset;
    const line = flushLine(this.carry, 0, this.carry.length, this.position, this.split);
    this.carry = null;
    return this.batch(base, [line]);
  }

  /**
   * `flush` in the form of `readRaw`: the held partial line as one line of bytes, or `null`.
   * The result is a copy, not a view of the reader's buffer.
   */
  flushRaw(): RawLines | null {
    if (!this.carry) return null;
    const data = this.carry;
    const base = this.offset;
    const line = flushLine(data, 0, data.length, this.position, this.split);
    this.carry = null;
    return {
      path: this.path,
      fileId: this.fileId,
      startOffset: base,
      endOffset: line.offset,
      data,
      count: 1,
      starts: Uint32Array.of(0),
      ends: Uint32Array.of(data.length),
      flags: Uint8Array.of(line.flags),
    };
  }

  /**
   * Moves the read position to `offset` (e.g. a checkpoint checked after opening), dropping
   * any held partial line.
   */
  seek(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RangeError(`invalid offset ${offset}: expected a non-negative integer`);
    }
    this.position = offset;
    this.carry = null;
    this.split.inSplitLine = false;
  }

  /** The file's first `length` bytes (fewer if it is shorter), read through the handle. */
  async head(length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.handle.read(buf, 0, length, 0);
    return buf.subarray(0, bytesRead);
  }

  /** Current size of the open file (fstat of the handle, so also of a deleted file). */
  async size(): Promise<number> {
    const st = await this.handle.stat();
    return st.size;
  }

  /** Closes the handle. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private batch(base: number, lines: Line[]): LineBatch {
    const endOffset = lines.length > 0 ? lines[lines.length - 1].offset : base;
    return { path: this.path, fileId: this.fileId, startOffset: base, endOffset, lines };
  }

  // At end of file: notice deletion, and truncation (the file is now shorter than what was
  // read). Returns true when reading should start over from 0.
  private async checkAtEnd(): Promise<boolean> {
    const st = await this.handle.stat();
    if (st.nlink === 0 && !this.unlinked) {
      this.unlinked = true;
      this.onEvent?.({ type: "deleted", path: this.path, fileId: this.fileId });
    }
    if (st.size >= this.position) return false;
    // Whatever was held of a partial line belonged to the old content: it is gone.
    const previousOffset = this.position;
    this.position = 0;
    this.carry = null;
    this.split.inSplitLine = false;
    this.onEvent?.({
      type: "truncated",
      path: this.path,
      fileId: this.fileId,
      previousOffset,
      size: st.size,
    });
    return st.size > 0;
  }
}

function validate(options: TailReaderOptions): void {
  const chunk = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new RangeError(`invalid chunkSize ${chunk}: expected a positive integer of bytes`);
  }
  if (!Number.isInteger(maxLine) || maxLine < MIN_LINE_BYTES) {
    throw new RangeError(
      `invalid maxLineBytes ${maxLine}: expected an integer of at least ${MIN_LINE_BYTES}`,
    );
  }
  if (options.scratch && options.scratch.length < chunk + maxLine) {
    throw new RangeError(
      `scratch buffer too small: expected at least chunkSize + maxLineBytes = ${chunk + maxLine} bytes`,
    );
  }
  const start = options.startOffset ?? 0;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`invalid startOffset ${start}: expected a non-negative integer`);
  }
}

function refused(path: string, why: string): Error {
  return new Error(`could not open ${path} for tailing: ${why}; only regular files are tailed`);
}
