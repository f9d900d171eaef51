import { EventEmitter } from "node:events";
import type { FileInfo, TreeFilter, VolumeWatchWarning } from "./types.ts";

/** Options of `TreeWatcher`. */
export interface TreeWatcherOptions extends TreeFilter {
  /**
   * Milliseconds between full rescans that catch what kernel events missed (inotify
   * overflow, network filesystems without events). Default 10 000; 0 turns rescans off.
   */
  rescanIntervalMs?: number;
  /** Use stat polling instead of inotify (for filesystems without events). Default false. */
  usePolling?: boolean;
}

/** Events of a `TreeWatcher`. Each path is reported once per state change, never twice. */
export interface TreeWatcherEvents {
  /** A file matching the filter appeared (also emitted for files present at `start`). */
  add: [file: FileInfo];
  /** A known file's size, mtime or identity changed (identity: it was replaced / rotated). */
  change: [file: FileInfo, previous: FileInfo];
  /** A known file disappeared. */
  unlink: [file: FileInfo];
  /** A skipped symlink or special file, a watcher error... Each path+code is warned once. */
  warning: [warning: VolumeWatchWarning];
}

/**
 * Watches a directory tree (chokidar events + a periodic rescan) and reports regular files
 * matching include/exclude globs as relative `/` paths. Symlinks resolving outside the root are
 * never followed; FIFOs, sockets and devices are skipped and never opened.
 *
 * ```ts
 * const watcher = new TreeWatcher({ root: "/metrics", include: ["**\/*.prom"] });
 * watcher.on("add", (f) => ...).on("change", (f) => ...).on("warning", (w) => log.warn(w));
 * await watcher.start();   // resolves after the initial scan; "add" fired for existing files
 * ...
 * await watcher.close();
 * ```
 */
export class TreeWatcher extends EventEmitter<TreeWatcherEvents> {
  /** The absolute root being watched. */
  readonly root: string;

  constructor(options: TreeWatcherOptions) {
    super();
    this.root = options.root;
    throw new Error("volume-watch: TreeWatcher is not implemented yet");
  }

  /** Starts watching; resolves after the initial scan has reported every existing file. */
  async start(): Promise<void> {}

  /** The files currently known, in no particular order. */
  files(): FileInfo[] {
    return [];
  }

  /** Walks the whole tree now and reports any difference; resolves when done. */
  async rescan(): Promise<void> {}

  /** Stops watching and the rescan timer. Idempotent. */
  async close(): Promise<void> {}
}
