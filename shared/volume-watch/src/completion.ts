import { EventEmitter } from "node:events";
import type { TreeWatcherOptions } from "./tree-watcher.ts";
import type { FileInfo, VolumeWatchWarning } from "./types.ts";

/** Options of `CompletionWatcher`. */
export interface CompletionWatcherOptions extends TreeWatcherOptions {
  /**
   * A file is complete once its size and mtime (and identity) stayed the same for this many
   * milliseconds, measured from when this process first saw that state. Default 2 000.
   */
  quietPeriodMs?: number;
  /** Milliseconds between stat checks of not-yet-complete files. Default min(1000, quiet / 4). */
  checkIntervalMs?: number;
}

/** Events of a `CompletionWatcher`. */
export interface CompletionWatcherEvents {
  /**
   * The file has been quiet for the quiet period. Emitted once per state: if the file changes
   * again later, it becomes pending again and is reported complete again with its new state.
   */
  complete: [file: FileInfo];
  /** The file disappeared (before or after it was complete). */
  unlink: [file: FileInfo];
  /** Skipped symlinks and special files, watcher errors. */
  warning: [warning: VolumeWatchWarning];
}

/**
 * "File complete" detection for uploaders: watches a tree and emits `complete` for each file
 * whose size and mtime stayed unchanged for the quiet period. At the drain, `finalSweep()`
 * walks the whole tree (same filters and safety) and returns every file not yet reported in
 * its current state, whether or not it has been quiet long enough.
 *
 * ```ts
 * const files = new CompletionWatcher({ root: "/artifacts", include: ["**"], quietPeriodMs: 2000 });
 * files.on("complete", (f) => queue.push(f)).on("warning", (w) => log.warn(w));
 * await files.start();
 * await lifecycle.finished;
 * for (const f of await files.finalSweep()) queue.push(f);
 * await files.close();
 * ```
 */
export class CompletionWatcher extends EventEmitter<CompletionWatcherEvents> {
  constructor(options: CompletionWatcherOptions) {
    super();
    void options;
    throw new Error("volume-watch: CompletionWatcher is not implemented yet");
  }

  /** Starts watching; resolves after the initial scan (existing files start their quiet clock). */
  async start(): Promise<void> {}

  /** Files seen but not (yet) complete in their current state. */
  pending(): FileInfo[] {
    return [];
  }

  /**
   * Walks the whole tree now and returns every included file that has not been reported
   * `complete` in its current state (size, mtime, identity); those are then counted as
   * reported, so a later `complete` or sweep does not repeat them.
   */
  async finalSweep(): Promise<FileInfo[]> {
    return [];
  }

  /** Stops watching and all timers. Idempotent. */
  async close(): Promise<void> {}
}
