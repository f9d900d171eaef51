import { EventEmitter } from "node:events";
import { realpath } from "node:fs/promises";
import { inspect } from "./safety.ts";
import { sameState, TreeWatcher, type TreeWatcherOptions } from "./tree-watcher.ts";
import type { FileInfo, VolumeWatchWarning } from "./types.ts";
import { walkAll } from "./walk.ts";

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

interface Tracked {
  info: FileInfo;
  /** When this process first saw `info`'s state (ms, monotonic clock). */
  since: number;
  reported: boolean;
}

const DEFAULT_QUIET_MS = 2_000;

/**
 * "File complete" detection for uploaders: watches a tree and emits `complete` for each file
 * whose size and mtime stayed unchanged for the quiet period. At the drain, `finalSweep()`
 * walks the whole tree (same filters and safety) and returns every file not yet reported in
 * its current state, whether or not it has been quiet long enough.
 *
 * The quiet clock starts when this process first sees a state, not at the file's mtime: the
 * writer's clock (another container, a network filesystem) cannot make a file look complete.
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
  private readonly options: CompletionWatcherOptions;
  private readonly quietMs: number;
  private readonly checkMs: number;
  private readonly tree: TreeWatcher;
  private readonly tracked = new Map<string, Tracked>();
  private readonly warned = new Set<string>();
  private realRoot = "";
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(options: CompletionWatcherOptions) {
    super();
    this.quietMs = options.quietPeriodMs ?? DEFAULT_QUIET_MS;
    if (!Number.isFinite(this.quietMs) || this.quietMs < 0) {
      throw new RangeError(`invalid quietPeriodMs ${this.quietMs}: expected milliseconds >= 0`);
    }
    this.checkMs = options.checkIntervalMs ?? Math.max(50, Math.min(1000, this.quietMs / 4));
    if (!Number.isFinite(this.checkMs) || this.checkMs <= 0) {
      throw new RangeError(`invalid checkIntervalMs ${this.checkMs}: expected milliseconds > 0`);
    }
    this.options = options;
    this.tree = new TreeWatcher(options);
    this.tree.on("add", (f) => this.observe(f));
    this.tree.on("change", (f) => this.observe(f));
    this.tree.on("unlink", (f) => this.forget(f));
    this.tree.on("warning", (w) => this.warnOnce(w));
  }

  /** Starts watching; resolves after the initial scan (existing files start their quiet clock). */
  async start(): Promise<void> {
    this.realRoot = await realpath(this.tree.root).catch(() => this.tree.root);
    await this.tree.start();
    this.schedule();
  }

  /** Files seen but not (yet) complete in their current state. */
  pending(): FileInfo[] {
    return [...this.tracked.values()].filter((t) => !t.reported).map((t) => t.info);
  }

  /**
   * Walks the whole tree now and returns every included file that has not been reported
   * `complete` in its current state (size, mtime, identity); those are then counted as
   * reported, so a later `complete` or sweep does not repeat them.
   */
  async finalSweep(): Promise<FileInfo[]> {
    const found = await walkAll({
      ...this.options,
      root: this.tree.root,
      onWarning: (w) => this.warnOnce(w),
    });
    const result: FileInfo[] = [];
    for (const file of found) {
      const t = this.tracked.get(file.path);
      if (t?.reported && sameState(t.info, file)) continue;
      this.tracked.set(file.path, { info: file, since: performance.now(), reported: true });
      result.push(file);
    }
    return result;
  }

  /** Stops watching and all timers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.tree.close();
  }

  // The sweep walks past the same symlinks and FIFOs the watcher already warned about.
  private warnOnce(warning: VolumeWatchWarning): void {
    const key = `${warning.code}\0${warning.path ?? ""}`;
    if (warning.path !== undefined && this.warned.has(key)) return;
    this.warned.add(key);
    this.emit("warning", warning);
  }

  private observe(info: FileInfo): void {
    const t = this.tracked.get(info.path);
    if (t && sameState(t.info, info)) return;
    this.tracked.set(info.path, { info, since: performance.now(), reported: false });
  }

  private forget(info: FileInfo): void {
    if (this.tracked.delete(info.path)) this.emit("unlink", info);
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), this.checkMs);
    this.timer.unref();
  }

  // Stats every pending file itself (events may be late or missing): a change restarts its
  // quiet clock, a state unchanged for the quiet period is reported complete.
  private async check(): Promise<void> {
    const pending = [...this.tracked.values()].filter((t) => !t.reported);
    await Promise.all(
      pending.map(async (t) => {
        const entry = await inspect(this.tree.root, this.realRoot, t.info.absolutePath);
        if (this.closed || this.tracked.get(t.info.path) !== t) return;
        if (entry.kind !== "file") return; // the tree watcher reports the unlink
        if (!sameState(t.info, entry.info)) {
          this.tracked.set(t.info.path, {
            info: entry.info,
            since: performance.now(),
            reported: false,
          });
        } else if (performance.now() - t.since >= this.quietMs) {
          t.reported = true;
          this.emit("complete", t.info);
        }
      }),
    );
  }
}
