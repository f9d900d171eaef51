import type { LineBatch, TailFileEvent } from "./types.ts";

/** Default bytes read per `read()`: big reads are what make tailing fast. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Default longest line delivered in one piece; longer lines are split (`LineFlags.SPLIT`). */
export const DEFAULT_MAX_LINE_BYTES = 256 * 1024;

/** Options of `TailReader.open`. */
export interface TailReaderOptions {
  /** The path reported in batches and events (e.g. relative to a root). Default: as opened. */
  path?: string;
  /** Byte offset to start reading at, e.g. a restored checkpoint. Default 0. */
  startOffset?: number;
  /** Bytes read per `read()` call. Default `DEFAULT_CHUNK_SIZE` (1 MiB). */
  chunkSize?: number;
  /**
   * Longest line delivered whole, in bytes. A longer line is split into pieces of at most this
   * size, cut on UTF-8 character boundaries, each flagged `SPLIT` (the last also `SPLIT_END`);
   * nothing is dropped and tailing goes on. Default `DEFAULT_MAX_LINE_BYTES` (256 KiB).
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

  private constructor(path: string, fileId: string) {
    this.path = path;
    this.fileId = fileId;
  }

  /**
   * Opens a regular file for tailing (O_NOFOLLOW and O_NONBLOCK; refuses non-regular files).
   * @throws when the file cannot be opened or is not a regular file
   */
  static async open(absolutePath: string, options: TailReaderOptions = {}): Promise<TailReader> {
    void options;
    throw new Error(`volume-watch: TailReader is not implemented yet (${absolutePath})`);
  }

  /** Offset just after the last line delivered: the value a checkpoint stores. */
  get offset(): number {
    return 0;
  }

  /** Offset of the next byte to read (`offset` plus the held partial line). */
  get readOffset(): number {
    return 0;
  }

  /** Bytes of the partial last line held back, waiting for its newline or `flush()`. */
  get pendingBytes(): number {
    return 0;
  }

  /** True once the file was seen unlinked (link count 0); it is still read to its end. */
  get deleted(): boolean {
    return false;
  }

  /**
   * Reads the next chunk and returns the complete lines in it. Returns `null` when there was
   * nothing new to read (end of file for now). A batch may hold no lines when the bytes read
   * only extended a partial line.
   */
  async read(): Promise<LineBatch | null> {
    return null;
  }

  /**
   * Delivers the held partial line, flagged `NO_NEWLINE`, and moves `offset` past it. Call it
   * at the drain, after `read()` returned `null`. Returns `null` when nothing is held.
   */
  flush(): LineBatch | null {
    return null;
  }

  /** Current size of the open file (fstat), and whether it is still linked. */
  async size(): Promise<number> {
    return 0;
  }

  /** Closes the handle. Idempotent. */
  async close(): Promise<void> {}
}
