import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "../status.ts";
import type { LifecycleLogger } from "./types.ts";

/**
 * The marker file (`workload-finished` on the lifecycle volume) is the contract between the
 * workload, or whatever wraps it, and the sidecars: its content is the workload's exit code as
 * decimal text, optionally followed by a newline, and it appears atomically (temp + rename).
 */

/** What a marker file said; `exitCode` is undefined when the content was not an integer. */
export interface MarkerContent {
  exitCode: number | undefined;
  /** The content as read, for the warning about a marker that is not a number. */
  raw: string;
}

// A decimal integer with optional surrounding whitespace. Negative values are accepted because
// some wrappers write -1 for a child killed by a signal.
const EXIT_CODE = /^\s*(-?\d{1,10})\s*$/;

export function parseMarker(raw: string): MarkerContent {
  const match = EXIT_CODE.exec(raw);
  const exitCode = match ? Number(match[1]) : undefined;
  return { exitCode, raw };
}

/** Reads a marker file; undefined when it does not exist (yet). */
export async function readMarker(file: string): Promise<MarkerContent | undefined> {
  try {
    return parseMarker(await readFile(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Writes `exitCode` to `file` so that readers see either no file or the whole content: a temp
 * file beside it is written, fsynced and renamed over the target (rename is atomic within one
 * filesystem, POSIX rename(2)); the directory is then fsynced so the rename survives a crash.
 */
export async function writeMarker(file: string, exitCode: number): Promise<void> {
  if (!Number.isInteger(exitCode)) {
    throw new TypeError(`could not write marker ${file}: exit code must be an integer`);
  }
  try {
    await writeFileAtomic(file, `${exitCode}\n`);
  } catch (err) {
    throw new Error(`could not write marker ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export interface MarkerWatchOptions {
  file: string;
  /** Period of the stat poll that backs up the directory's fs events. */
  pollIntervalMs: number;
  /** How long a marker that is not (yet) a number is re-read before it is taken as it is. */
  settleMs?: number;
  onFound(content: MarkerContent): void;
  logger: LifecycleLogger;
}

/**
 * Watches for the marker file with fs events on its directory (`fs.watch`, inotify on Linux)
 * plus a slow poll, which also covers a directory that does not exist yet and filesystems
 * without events. Calls `onFound` once. A marker without a number is re-read for `settleMs`
 * in case a writer that does not rename is still writing it, then reported with an undefined
 * exit code. Holds no ref'd handle: the caller decides what keeps the process alive.
 */
export function watchMarker(opts: MarkerWatchOptions): { close(): void } {
  const settleMs = opts.settleMs ?? 1000;
  let watcher: FSWatcher | undefined;
  let closed = false;
  let checking = false;
  let recheck = false;
  let firstSeenAt: number | undefined;

  const startWatching = () => {
    if (watcher || closed) return;
    try {
      watcher = watch(dirname(opts.file), { persistent: false }, () => void check());
      watcher.on("error", () => {
        // The directory went away or the watch broke; the poll carries on and re-arms it.
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      // ENOENT until the volume's directory exists; the poll retries.
    }
  };

  const check = async (): Promise<void> => {
    if (closed) return;
    if (checking) {
      recheck = true;
      return;
    }
    checking = true;
    try {
      const content = await readMarker(opts.file);
      if (content && !closed) accept(content);
    } catch (err) {
      opts.logger.warn({ path: opts.file, err }, "could not read marker file; retrying");
    } finally {
      checking = false;
    }
    if (recheck) {
      recheck = false;
      await check();
    }
  };

  const accept = (content: MarkerContent) => {
    const now = Date.now();
    firstSeenAt ??= now;
    if (content.exitCode === undefined && now - firstSeenAt < settleMs) {
      setTimeout(() => void check(), Math.min(100, settleMs)).unref();
      return;
    }
    if (content.exitCode === undefined) {
      opts.logger.warn(
        { path: opts.file, content: content.raw.slice(0, 40) },
        "marker file does not hold an exit code; the workload's exit code is unknown",
      );
    }
    close();
    opts.onFound(content);
  };

  const poll = setInterval(() => {
    startWatching();
    void check();
  }, opts.pollIntervalMs).unref();

  const close = () => {
    closed = true;
    clearInterval(poll);
    watcher?.close();
    watcher = undefined;
  };

  startWatching();
  void check();
  return { close };
}
