// Types shared by every part of @buildpod/volume-watch. Kept in one file so that consumers can
// read the whole contract (what a file, a line, a batch and a warning look like) in one place.

/**
 * A regular file found under a watched root. Identity fields are strings because inode numbers
 * on overlay or 64-bit-inode filesystems can exceed `Number.MAX_SAFE_INTEGER`, and strings
 * survive `JSON.stringify` (bigints do not).
 */
export interface FileInfo {
  /** Path relative to the root, always with `/` separators, never starting with `./` or `/`. */
  path: string;
  /** Absolute path under the root as reported (a symlink inside the root keeps its own path). */
  absolutePath: string;
  /** Size in bytes when last observed. */
  size: number;
  /** Modification time in milliseconds since the epoch when last observed. */
  mtimeMs: number;
  /** Device number of the file's filesystem, decimal. */
  dev: string;
  /** Inode number, decimal. */
  ino: string;
  /** `${dev}:${ino}`: the file's identity, stable across renames, changed by rotation. */
  id: string;
}

/** Which part of the library raised a warning, with a stable code consumers can count. */
export type WarningCode =
  /** A symlink resolves outside the root (or cannot be resolved); it is never followed. */
  | "symlink-outside-root"
  /** A FIFO, socket or device node; it is skipped and never opened. */
  | "special-file"
  /** A file or directory could not be read or stat'ed (permissions, vanished mid-scan...). */
  | "unreadable"
  /** The underlying file watcher reported an error; the periodic rescan keeps things going. */
  | "watch-error"
  /** The checkpoint file was torn or corrupt; it was set aside and tailing restarted from it. */
  | "checkpoint-corrupt"
  /** A checkpoint could not be written; the previous one stays in place and is retried. */
  | "checkpoint-write-failed"
  /** A checkpoint entry matched a file's inode but not its leading bytes (a reused inode). */
  | "checkpoint-mismatch";

/**
 * A non-fatal problem. Libraries never print: every warning is handed to the consumer, which
 * logs it (with `component`, `path`, `err`) and may count it in a metric.
 */
export interface VolumeWatchWarning {
  code: WarningCode;
  /** Lowercase, "could not <verb> <object>: <why>" where it describes a failure. */
  message: string;
  /** The path concerned, relative to the root when there is one. */
  path?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/** Receives warnings from functions that are not event emitters (`walk`, `CheckpointStore`). */
export type WarningHandler = (warning: VolumeWatchWarning) => void;

/** Which files under a root are of interest. Shared by `walk`, `TreeWatcher` and `Tailer`. */
export interface TreeFilter {
  /** The directory to watch; must exist. Nothing outside it is ever opened or reported. */
  root: string;
  /**
   * picomatch globs relative to the root that a file's path must match (default `["**"]`).
   * Dot files match (`dot: true`). Example: `["**\/*.log", "junit/*.xml"]`.
   */
  include?: readonly string[];
  /**
   * picomatch globs relative to the root to leave out. A directory matching an exclude glob is
   * not descended into (`"node_modules"` and `"node_modules/**"` both prune it).
   */
  exclude?: readonly string[];
}

/**
 * Bit flags on a `Line`. Test with `(line.flags & LineFlags.SPLIT) !== 0`.
 */
export const LineFlags = {
  /** No flags: a whole, valid UTF-8 line that ended with `\n`. */
  NONE: 0,
  /**
   * The line was longer than `maxLineBytes` and is delivered in pieces of at most that many
   * bytes; every piece carries this flag. Pieces are cut on UTF-8 character boundaries.
   */
  SPLIT: 1,
  /** Set on the last piece of a split line (the one that ends at the line's newline). */
  SPLIT_END: 2,
  /** The bytes were not valid UTF-8; invalid sequences were replaced with U+FFFD. */
  INVALID_UTF8: 4,
  /** Delivered at the drain (`flush`) without a terminating newline. */
  NO_NEWLINE: 8,
} as const;

/** One line of a tailed file. */
export interface Line {
  /** The line's text without its trailing `\n` (a `\r` before it is kept). */
  text: string;
  /**
   * Byte offset in the file just after this line (after its newline). Acknowledging this
   * offset commits the checkpoint exactly up to and including this line.
   */
  offset: number;
  /** `LineFlags` bits. */
  flags: number;
}

/**
 * Lines read from one file in one go. Batches of the same file come in file order, each
 * starting where the previous one ended (after a truncation, at 0 again); `lines[i].offset`
 * increases. `TailReader.read` may return a batch without lines (the bytes read only extended
 * a partial line); `Tailer` never hands one out.
 */
export interface LineBatch {
  /** The file's path relative to the root (the path it had when the batch was read). */
  path: string;
  /** The file's identity `${dev}:${ino}` (see `FileInfo.id`). */
  fileId: string;
  /** Byte offset of the first byte of the first line. */
  startOffset: number;
  /** Byte offset after the last line: `lines.at(-1).offset`, or `startOffset` if empty. */
  endOffset: number;
  /** The lines, in file order. */
  lines: Line[];
}

/** What happened to a tailed file. Reported by `Tailer` "file" events and `TailReader`. */
export type TailFileEvent =
  /** The file is being tailed from `offset` (0, a restored checkpoint, or its end). */
  | { type: "opened"; path: string; fileId: string; offset: number; restored: boolean }
  /** The file became shorter than the read position: reading restarted at 0. */
  | { type: "truncated"; path: string; fileId: string; previousOffset: number; size: number }
  /**
   * A new file (new inode) appeared at the path. The old file is read to its end through its
   * open handle (`fileId` is the old one), then the new one is opened.
   */
  | { type: "rotated"; path: string; fileId: string; newFileId: string }
  /** The file was unlinked; its open handle is read to the end, then closed. */
  | { type: "deleted"; path: string; fileId: string }
  /** Reading the file ended (deleted or rotated away and read to its end, or at close). */
  | { type: "closed"; path: string; fileId: string; offset: number };

/**
 * The lines of one read as bytes and boundaries (`TailReader.readRaw`): no string and no
 * object per line. Line `i` is `data[starts[i], ends[i])` without its newline, with
 * `LineFlags` `flags[i]`; the file offset just after it is `startOffset + starts[i + 1]`, or
 * `endOffset` for the last line. Every buffer here is a view of the reader's own memory,
 * valid only until the reader's next call: decode or copy what you keep before that.
 */
export interface RawLines {
  path: string;
  fileId: string;
  startOffset: number;
  endOffset: number;
  /** The file's bytes from `startOffset` to `endOffset`. */
  data: Buffer;
  /** Number of lines; the arrays below may be longer. */
  count: number;
  starts: Uint32Array;
  ends: Uint32Array;
  flags: Uint8Array;
}
