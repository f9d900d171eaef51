import { EventEmitter } from "node:events";
import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { compileFilter, type PathFilter } from "./filter.ts";
import { inspect, relativePath } from "./safety.ts";
import type { FileInfo, TreeFilter, VolumeWatchWarning } from "./types.ts";
import { walkAll } from "./walk.ts";

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

const DEFAULT_RESCAN_MS = 10_000;
// Bounds the memory spent remembering which warnings were already given.
const MAX_REMEMBERED_WARNINGS = 10_000;

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

  private readonly options: TreeWatcherOptions;
  private readonly filter: PathFilter;
  private readonly known = new Map<string, FileInfo>();
  // The latest refresh started per path: an older one finishing later must not win.
  private readonly generation = new Map<string, number>();
  private readonly warned = new Set<string>();
  private readonly inflight = new Map<string, Promise<void>>();
  private realRoot = "";
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private counter = 0;
  private closed = false;

  constructor(options: TreeWatcherOptions) {
    super();
    const rescan = options.rescanIntervalMs ?? DEFAULT_RESCAN_MS;
    if (!Number.isFinite(rescan) || rescan < 0) {
      throw new RangeError(
        `invalid rescanIntervalMs ${rescan}: expected milliseconds >= 0 (0 turns rescans off)`,
      );
    }
    this.options = options;
    this.root = path.resolve(options.root);
    this.filter = compileFilter(options);
  }

  /**
   * Starts watching; resolves after the initial scan has reported every existing file.
   * @throws when the root does not exist or is not readable
   */
  async start(): Promise<void> {
    try {
      this.realRoot = await realpath(this.root);
      if (!(await stat(this.realRoot)).isDirectory()) throw new Error("it is not a directory");
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(
        `could not watch ${this.root}: ${why}; create the directory or mount the volume first`,
        { cause: err },
      );
    }
    const watcher = watch(this.root, {
      ignoreInitial: true,
      followSymlinks: false,
      backend: this.options.usePolling ? "polling" : "auto",
      ignored: (p: string) => this.ignored(p),
    });
    this.watcher = watcher;
    watcher.on("all", (event, p) => this.onEvent(event, p));
    watcher.on("error", (err) =>
      this.warnOnce({
        code: "watch-error",
        message: `file watcher failed: ${String(err)}; the periodic rescan continues`,
        cause: err,
      }),
    );
    // Subscribe first, then scan: a file created in between is seen by one or the other.
    await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
    await this.rescan();
    this.scheduleRescan();
  }

  /** The files currently known, in no particular order. */
  files(): FileInfo[] {
    return [...this.known.values()];
  }

  /** Walks the whole tree now and reports any difference; resolves when done. */
  async rescan(): Promise<void> {
    if (this.closed) return;
    const found = await walkAll({
      ...this.options,
      root: this.root,
      onWarning: (w) => this.warnOnce(w),
    });
    const seen = new Set<string>();
    const checks: Promise<void>[] = [];
    for (const file of found) {
      seen.add(file.path);
      const before = this.known.get(file.path);
      if (before === undefined)
        this.apply(file.path, { kind: "file", info: file }, this.nextGeneration(file.path));
      else if (!sameState(before, file)) checks.push(this.refresh(file.absolutePath));
    }
    // Not seen by the walk: confirm with a stat of its own (it may have just been created).
    for (const [rel, info] of this.known)
      if (!seen.has(rel)) checks.push(this.refresh(info.absolutePath));
    await Promise.all(checks);
    // A refresh of ours overtaken by a newer one (an event meanwhile) applies nothing; wait
    // for those newer ones too (once: a file written without pause keeps starting more).
    await Promise.all(this.inflight.values());
  }

  /** Stops watching and the rescan timer. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.watcher?.close();
  }

  private scheduleRescan(): void {
    const interval = this.options.rescanIntervalMs ?? DEFAULT_RESCAN_MS;
    if (interval === 0 || this.closed) return;
    this.timer = setTimeout(() => {
      this.rescan()
        .catch((err) =>
          this.warnOnce({
            code: "watch-error",
            message: `could not rescan ${this.root}: ${String(err)}`,
            cause: err,
          }),
        )
        .finally(() => this.scheduleRescan());
    }, interval);
    this.timer.unref();
  }

  private ignored(absolutePath: string): boolean {
    const rel = relativePath(this.root, absolutePath);
    return rel !== "" && !rel.startsWith("..") && this.filter.excludes(rel);
  }

  private onEvent(event: string, absolutePath: string): void {
    if (this.closed) return;
    if (event === "add" || event === "change" || event === "unlink") {
      void this.refresh(absolutePath);
    } else if (event === "unlinkDir") {
      const prefix = `${relativePath(this.root, absolutePath)}/`;
      for (const [rel, info] of this.known)
        if (rel.startsWith(prefix)) void this.refresh(info.absolutePath);
    }
  }

  // Looks at one path again and reports what changed.
  private refresh(absolutePath: string): Promise<void> {
    const rel = relativePath(this.root, absolutePath);
    const gen = this.nextGeneration(rel);
    const done = inspect(this.root, this.realRoot, absolutePath).then((entry) => {
      this.apply(rel, entry, gen);
      if (this.inflight.get(rel) === done) this.inflight.delete(rel);
    });
    this.inflight.set(rel, done);
    return done;
  }

  private apply(rel: string, entry: Awaited<ReturnType<typeof inspect>>, gen: number): void {
    if (this.closed || this.generation.get(rel) !== gen) return;
    const before = this.known.get(rel);
    if (entry.kind === "file" && this.filter.includesFile(rel)) {
      this.known.set(rel, entry.info);
      if (before === undefined) this.emit("add", entry.info);
      else if (!sameState(before, entry.info)) this.emit("change", entry.info, before);
      return;
    }
    if (entry.kind === "skip" && entry.warning) this.warnOnce(entry.warning);
    this.generation.delete(rel);
    if (before !== undefined) {
      this.known.delete(rel);
      this.emit("unlink", before);
    }
  }

  private nextGeneration(rel: string): number {
    const gen = ++this.counter;
    this.generation.set(rel, gen);
    return gen;
  }

  private warnOnce(warning: VolumeWatchWarning): void {
    const key = `${warning.code}\0${warning.path ?? ""}`;
    if (warning.path !== undefined && this.warned.has(key)) return;
    if (this.warned.size < MAX_REMEMBERED_WARNINGS) this.warned.add(key);
    this.emit("warning", warning);
  }
}

/** Same size, mtime and identity. */
export function sameState(a: FileInfo, b: FileInfo): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.id === b.id;
}
