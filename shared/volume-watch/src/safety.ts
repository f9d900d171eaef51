// The safety rules every part of the library applies before it reports or opens a path:
// nothing outside the root, no special files. A workload controls the volume's contents, so a
// symlink to /etc/shadow or a FIFO that would block a reader forever must be harmless.

import { type BigIntStats, constants } from "node:fs";
import { type FileHandle, lstat, open, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { FileInfo, VolumeWatchWarning } from "./types.ts";

/** What a path under the root turned out to be. */
export type Entry =
  | { kind: "file"; info: FileInfo }
  | { kind: "directory" }
  | { kind: "skip"; warning?: VolumeWatchWarning }
  | { kind: "missing" };

/** The root-relative form of an absolute path, with `/` separators. */
export function relativePath(root: string, absolutePath: string): string {
  return path.relative(root, absolutePath).split(path.sep).join("/");
}

/** True when `candidate` is `parent` itself or lies below it (both already real paths). */
export function isInside(parent: string, candidate: string): boolean {
  const rel = path.relative(parent, candidate);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** Builds a `FileInfo` from bigint stats (inode numbers may not fit a double). */
export function fileInfo(root: string, absolutePath: string, st: BigIntStats): FileInfo {
  const dev = st.dev.toString();
  const ino = st.ino.toString();
  return {
    path: relativePath(root, absolutePath),
    absolutePath,
    size: Number(st.size),
    mtimeMs: Number(st.mtimeNs) / 1e6,
    dev,
    ino,
    id: `${dev}:${ino}`,
  };
}

/**
 * Classifies one path below `root` (whose real path is `realRoot`). A symlink counts as the
 * file it points to only when that file is a regular file inside the root; symlinked
 * directories are never descended into (what they point to inside the root is walked anyway).
 */
export async function inspect(
  root: string,
  realRoot: string,
  absolutePath: string,
): Promise<Entry> {
  const rel = relativePath(root, absolutePath);
  let st: BigIntStats;
  try {
    st = await lstat(absolutePath, { bigint: true });
  } catch (err) {
    return missingOrUnreadable(err, rel);
  }
  if (st.isSymbolicLink()) return inspectSymlink(root, realRoot, absolutePath, rel);
  return classify(root, absolutePath, rel, st);
}

async function inspectSymlink(
  root: string,
  realRoot: string,
  absolutePath: string,
  rel: string,
): Promise<Entry> {
  let target: string;
  try {
    target = await realpath(absolutePath);
  } catch (err) {
    // A dangling link is not a file yet; say nothing, the link may be completed later.
    if (errorCode(err) === "ENOENT") return { kind: "missing" };
    return outside(rel, err);
  }
  if (!isInside(realRoot, target)) return outside(rel);
  let st: BigIntStats;
  try {
    st = await stat(target, { bigint: true });
  } catch (err) {
    return missingOrUnreadable(err, rel);
  }
  if (st.isDirectory()) return { kind: "skip" };
  return classify(root, absolutePath, rel, st);
}

function classify(root: string, absolutePath: string, rel: string, st: BigIntStats): Entry {
  if (st.isDirectory()) return { kind: "directory" };
  if (st.isFile()) return { kind: "file", info: fileInfo(root, absolutePath, st) };
  const what = st.isFIFO() ? "a fifo" : st.isSocket() ? "a socket" : "a device node";
  return {
    kind: "skip",
    warning: {
      code: "special-file",
      path: rel,
      message: `skipped ${what}: only regular files are read`,
    },
  };
}

function outside(rel: string, cause?: unknown): Entry {
  return {
    kind: "skip",
    warning: {
      code: "symlink-outside-root",
      path: rel,
      message: "skipped a symlink that does not resolve inside the root: it is never followed",
      cause,
    },
  };
}

function missingOrUnreadable(err: unknown, rel: string): Entry {
  if (errorCode(err) === "ENOENT" || errorCode(err) === "ENOTDIR") return { kind: "missing" };
  return {
    kind: "skip",
    warning: {
      code: "unreadable",
      path: rel,
      message: `could not stat ${rel}: ${String(err)}`,
      cause: err,
    },
  };
}

/** The `code` of a Node.js system error, if any. */
export function errorCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}

/** An open regular file below a root, with what it was when opened. */
export interface OpenedFile {
  handle: FileHandle;
  /** Stats of the opened handle (not of the path, which may change afterwards). */
  info: FileInfo;
}

/**
 * Opens `relative` (a path below `root`) for reading, refusing anything outside the root or
 * not a regular file. The real path is opened with O_NOFOLLOW and O_NONBLOCK, and the handle
 * itself is checked with fstat, so a FIFO or a symlink swapped in after the check is neither
 * followed nor waited on. Throws an error with a clear message (and `code`) when refused.
 */
export async function openInsideRoot(root: string, relative: string): Promise<OpenedFile> {
  const absolutePath = path.resolve(root, relative);
  const realRoot = await realpath(root);
  const target = await realpath(absolutePath);
  if (!isInside(realRoot, target)) {
    throw refused(relative, "it resolves outside the root", "EOUTSIDEROOT");
  }
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const handle = await open(target, flags);
  try {
    const st = await handle.stat({ bigint: true });
    if (!st.isFile()) throw refused(relative, "it is not a regular file", "ENOTREGULAR");
    return { handle, info: fileInfo(root, absolutePath, st) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function refused(relative: string, why: string, code: string): Error {
  const err = new Error(
    `could not open ${relative}: ${why}; only regular files below the root are read`,
  );
  return Object.assign(err, { code });
}
