import { DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINE_BYTES } from "./tail-reader.ts";
import type { TreeWatcherOptions } from "./tree-watcher.ts";
import type { TailFileEvent, VolumeWatchWarning } from "./types.ts";

/** Options of `Tailer`. */
export interface TailerOptions extends TreeWatcherOptions {
  /**
   * The JSON checkpoint file (put it outside the root, or exclude it). Without one, offsets
   * live in memory only and every start reads from `startAt`.
   */
  checkpointFile?: string;
  /**
   * Byte budget of lines handed out but not yet acknowledged. While it is reached, reading
   * pauses (`next()` waits for `ack`). Soft: one read may pass it by at most `chunkSize` plus
   * `maxLineBytes`. Partial lines held back add at most `maxLineBytes` per open file.
   * Default 16 MiB.
   */
  maxBufferedBytes?: number;
  /** Bytes read per turn from one file. Default 1 MiB. */
  chunkSize?: number;
  /** Longest line delivered in one piece; longer ones are split. Default 256 KiB. */
  maxLineBytes?: number;
  /**
   * Where to start a file found by the first scan that has no checkpoint. Files appearing
   * later are always read from their beginning. Default "beginning".
   */
  startAt?: "beginning" | "end";
  /** Milliseconds between checks of open files for growth, rotation, deletion. Default 1 000. */
  pollIntervalMs?: number;
  /** Milliseconds between checkpoint writes (only when something changed). Default 1 000. */
  checkpointIntervalMs?: number;
  /**
   * After a rotation, how long the old file stays open for late writes once read to its end.
   * Default 5 000. At the drain it is read to its end and closed at once.
   */
  rotateWaitMs?: number;
}

/** Counters and gauges of a `Tailer`, for logs and metrics. */
export interface TailerStats {
  /** Bytes handed out and not yet acknowledged, plus partial lines held back. */
  bufferedBytes: number;
  /** Bytes handed out and not yet acknowledged: what `maxBufferedBytes` caps. */
  unackedBytes: number;
  /** True while reading is paused because `unackedBytes` reached `maxBufferedBytes`. */
  paused: boolean;
  /** Number of files open for tailing. */
  files: number;
  /** Totals since start. */
  bytesRead: number;
  linesRead: number;
}

/** Events of a `Tailer`. */
export interface TailerEvents {
  /** Opened, truncated, rotated, deleted, closed. */
  file: [event: TailFileEvent];
  /** Skipped files, corrupt checkpoint, watcher errors, checkpoint write failures. */
  warning: [warning: VolumeWatchWarning];
}

const DEFAULTS = {
  maxBufferedBytes: 16 * 1024 * 1024,
  pollIntervalMs: 1_000,
  checkpointIntervalMs: 1_000,
  rotateWaitMs: 5_000,
  chunkSize: DEFAULT_CHUNK_SIZE,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
};

/** The numeric options with their defaults applied. */
export type TailerSettings = typeof DEFAULTS;

/**
 * Applies defaults and checks the numeric options.
 * @throws RangeError naming the first option out of range
 */
export function settingsOf(options: TailerOptions): TailerSettings {
  const settings = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof TailerSettings)[]) {
    const value = options[key] ?? DEFAULTS[key];
    const zeroAllowed = key === "rotateWaitMs";
    if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
      throw new RangeError(`invalid ${key} ${value}: expected a positive number`);
    }
    settings[key] = value;
  }
  return settings;
}
