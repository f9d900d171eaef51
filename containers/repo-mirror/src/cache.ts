import { constants } from "node:fs";
import { access, mkdir, readFile, readlink, realpath, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The cache layout shared by `checkout` (reader, read-only mount) and `sync` (the only writer):
 *
 *   <cache>/v1/mirrors/<key>.git   symlink -> ../store/<key>.<stamp>.git (relative, so the cache
 *                                  may be mounted at any path); swapped atomically by rename
 *   <cache>/v1/store/<key>.<stamp>.git   a bare `git clone --mirror`; `buildpod-retired` inside
 *                                  once replaced (deleted by sync after a grace period)
 *   <cache>/v1/marks/<key>.broken  JSON written by a checkout that found the mirror corrupt;
 *                                  sync rebuilds the mirror and removes the mark
 *   <cache>/v1/locks/<key>.lock    sync's per-mirror lock (JSON: pid, host, time), heartbeat by
 *                                  mtime, stale after a timeout
 *   <cache>/v1/tmp/                half-built mirrors; never read by checkout
 */
export interface CacheLayout {
  root: string;
  mirrors: string;
  store: string;
  marks: string;
  locks: string;
  tmp: string;
}

export const LAYOUT_VERSION = "v1";

export function cacheLayout(cacheDir: string, marksDir?: string): CacheLayout {
  const root = join(cacheDir, LAYOUT_VERSION);
  return {
    root,
    mirrors: join(root, "mirrors"),
    store: join(root, "store"),
    marks: marksDir ?? join(root, "marks"),
    locks: join(root, "locks"),
    tmp: join(root, "tmp"),
  };
}

export const mirrorLink = (l: CacheLayout, key: string) => join(l.mirrors, `${key}.git`);
export const markFile = (l: CacheLayout, key: string) => join(l.marks, `${key}.broken`);
export const lockFile = (l: CacheLayout, key: string) => join(l.locks, `${key}.lock`);

/** Where a mirror stands, as the checkout sees it. */
export type MirrorLookup =
  | { state: "found"; link: string; path: string }
  | { state: "no-cache"; reason: string }
  | { state: "missing" }
  | { state: "broken"; mark: BrokenMark };

export interface BrokenMark {
  url: string;
  reason: string;
  at: string;
}

/**
 * Finds the mirror for `key`. The symlink is resolved once, here, so one checkout reads one
 * generation of the mirror even if sync swaps in a rebuilt one meanwhile.
 */
export async function lookupMirror(layout: CacheLayout, key: string): Promise<MirrorLookup> {
  try {
    await access(layout.root, constants.R_OK | constants.X_OK);
  } catch (e) {
    return { state: "no-cache", reason: (e as Error).message };
  }
  const mark = await readMark(layout, key);
  if (mark) return { state: "broken", mark };

  const link = mirrorLink(layout, key);
  try {
    const path = await realpath(link);
    await stat(join(path, "objects"));
    await stat(join(path, "HEAD"));
    return { state: "found", link, path };
  } catch {
    return { state: "missing" };
  }
}

async function readMark(layout: CacheLayout, key: string): Promise<BrokenMark | undefined> {
  try {
    return JSON.parse(await readFile(markFile(layout, key), "utf8")) as BrokenMark;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    // A mark we cannot parse still means "broken".
    return { url: "", reason: `unreadable mark: ${(e as Error).message}`, at: "" };
  }
}

/**
 * Leaves a mark asking sync to rebuild a mirror. Returns the error instead of throwing: the
 * cache is normally mounted read-only in job pods, and a mark that cannot be written must not
 * fail the job (the caller logs it and counts it in a metric).
 */
export async function writeMark(
  layout: CacheLayout,
  key: string,
  mark: BrokenMark,
): Promise<Error | undefined> {
  try {
    await mkdir(layout.marks, { recursive: true });
    await writeFile(markFile(layout, key), `${JSON.stringify(mark)}\n`);
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

export async function removeMark(layout: CacheLayout, key: string): Promise<void> {
  await rm(markFile(layout, key), { force: true });
}

/** The store directory a mirror link points at, or undefined when there is no link. */
export async function linkTarget(layout: CacheLayout, key: string): Promise<string | undefined> {
  try {
    return join(layout.mirrors, await readlink(mirrorLink(layout, key)));
  } catch {
    return undefined;
  }
}
