import { EventEmitter } from "node:events";
import type { TreeWatcherOptions } from "./tree-watcher.ts";
import type { LineBatch, TailFileEvent, VolumeWatchWarning } from "./types.ts";

/** Options of `Tailer`. */
export interface TailerOptions extends TreeWatcherOptions {
  /**
   * The JSON checkpoint file (put it outside the root, or exclude it). Without one, offsets
   * live in memory only and every start reads from `startAt`.
   */
  checkpointFile?: string;
  /**
   * Byte budget of lines handed out but not yet acknowledged, plus partial lines held back.
   * While it is reached, reading pauses (`next()` waits for `ack`). Soft: one read may pass it
   * by at most `chunkSize`. Default 16 MiB.
   */
  maxBufferedBytes?: number;
  /** Bytes read per turn from one file. Default 1 MiB. */
  chunkSize?: number;
  /** Longest line delivered in one piece; longer ones are split. Default 256 KiB. */
  maxLineBytes?: number;
  /** Where to start a file that has no checkpoint. Default "beginning". */
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
  /** Bytes handed out and not yet acknowledged, plus partial lines held: what the budget caps. */
  bufferedBytes: number;
  /** Bytes handed out and not yet acknowledged. */
  unackedBytes: number;
  /** True while reading is paused because `bufferedBytes` reached `maxBufferedBytes`. */
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

/**
 * Tails every file of a tree as lines, with checkpoints committed only on acknowledgement and
 * a byte budget that pauses reading while the consumer is behind. Pull batches with `next()`
 * or `for await`; acknowledge each delivered batch (or a prefix of it) with `ack`, in any
 * order; the checkpoint moves to the highest contiguously acknowledged offset of each file.
 *
 * ```ts
 * const tailer = new Tailer({ root: "/logs", include: ["**\/*.log"], checkpointFile });
 * tailer.on("warning", (w) => log.warn(w)).on("file", (e) => log.info(e));
 * await tailer.start();
 * lifecycle.finished.then(() => tailer.drain());
 * for await (const batch of tailer) sink.send(batch.lines).then(() => tailer.ack(batch));
 * await sink.idle(); await tailer.close();
 * ```
 */
export class Tailer extends EventEmitter<TailerEvents> implements AsyncIterable<LineBatch> {
  constructor(options: TailerOptions) {
    super();
    void options;
    throw new Error("volume-watch: Tailer is not implemented yet");
  }

  /** Restores checkpoints, starts watching, opens the files found. */
  async start(): Promise<void> {}

  /**
   * The next batch of lines from any file (files take turns, one chunk each). Waits while no
   * file has new data or while the budget is used up. Returns `undefined` once the drain has
   * delivered everything (or after `close`).
   */
  async next(): Promise<LineBatch | undefined> {
    return undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<LineBatch> {
    return {
      next: async () => {
        const value = await this.next();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
    };
  }

  /**
   * Acknowledges delivery of `batch` up to `upTo` (a line's `offset`; default the whole batch).
   * Acks may come in any order across batches; each file's checkpoint commits the highest
   * offset below which everything is acknowledged.
   */
  ack(batch: LineBatch, upTo?: number): void {
    void batch;
    void upTo;
  }

  /**
   * Starts the drain: one final rescan, every file read to its current end, partial last lines
   * delivered (flagged `NO_NEWLINE`); then `next()` returns `undefined`.
   */
  drain(): void {}

  /** Writes the checkpoint file now (if configured). */
  async checkpoint(): Promise<void> {}

  /** Current counters, see `TailerStats`. */
  stats(): TailerStats {
    return {
      bufferedBytes: 0,
      unackedBytes: 0,
      paused: false,
      files: 0,
      bytesRead: 0,
      linesRead: 0,
    };
  }

  /** Stops everything, writes the final checkpoint and closes all files. Idempotent. */
  async close(): Promise<void> {}
}
