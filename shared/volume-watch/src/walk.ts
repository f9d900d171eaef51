import type { Dirent } from "node:fs";
import { readdir, realpath } from "node:fs/promises";
import path from "node:path";
import { compileFilter, type PathFilter } from "./filter.ts";
import { errorCode, inspect, relativePath } from "./safety.ts";
import type { FileInfo, TreeFilter, WarningHandler } from "./types.ts";

/** Options of `walk`: which files, and where warnings go. */
export interface WalkOptions extends TreeFilter {
  /** Receives skipped symlinks, special files and unreadable directories. */
  onWarning?: WarningHandler;
  /** Stops the walk early (the generator then just ends). */
  signal?: AbortSignal;
}

// How many entries of one directory are stat'ed at once.
const STAT_CONCURRENCY = 64;

/**
 * Yields every regular file below the root that the filter includes, depth first, with the
 * same safety rules as the watcher: symlinks resolving outside the root, FIFOs, sockets and
 * devices are skipped with a warning and never opened. This is the final sweep of the drain.
 */
export async function* walk(options: WalkOptions): AsyncGenerator<FileInfo> {
  const root = path.resolve(options.root);
  const realRoot = await realpath(root);
  const filter = compileFilter(options);
  const pending = [root];
  while (pending.length > 0) {
    if (options.signal?.aborted) return;
    const dir = pending.pop() as string;
    const entries = await listDirectory(root, dir, options);
    const candidates = entries.filter(
      (e) => !filter.excludes(relativePath(root, path.join(dir, e.name))),
    );
    for (let i = 0; i < candidates.length; i += STAT_CONCURRENCY) {
      const slice = candidates.slice(i, i + STAT_CONCURRENCY);
      const found = await Promise.all(
        slice.map((e) => inspect(root, realRoot, path.join(dir, e.name))),
      );
      for (const [k, entry] of found.entries()) {
        if (entry.kind === "directory") pending.push(path.join(dir, slice[k].name));
        else if (entry.kind === "skip" && entry.warning) options.onWarning?.(entry.warning);
        else if (entry.kind === "file" && wanted(filter, entry.info.path)) yield entry.info;
      }
    }
  }
}

/** Collects `walk` into an array. */
export async function walkAll(options: WalkOptions): Promise<FileInfo[]> {
  const files: FileInfo[] = [];
  for await (const file of walk(options)) files.push(file);
  return files;
}

function wanted(filter: PathFilter, rel: string): boolean {
  return filter.includesFile(rel);
}

async function listDirectory(root: string, dir: string, options: WalkOptions): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    // A directory removed while walking is simply gone; anything else is worth a warning.
    const code = errorCode(err);
    if (code !== "ENOENT" && code !== "ENOTDIR") {
      const rel = relativePath(root, dir) || ".";
      options.onWarning?.({
        code: "unreadable",
        path: rel,
        message: `could not list directory ${rel}: ${String(err)}`,
        cause: err,
      });
    }
    return [];
  }
}
