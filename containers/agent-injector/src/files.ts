/**
 * Atomic file writes: a temp file beside the target, fsync, chmod/chown, then rename. A reader
 * in another container therefore sees either the old file or the whole new one, never a part.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chown, copyFile, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InjectorError } from "./errors.ts";

/** Who should own a written file; `undefined` keeps the writing process's own ids. */
export interface Owner {
  uid: number;
  gid: number;
}

export interface WriteOptions {
  mode: number;
  owner?: Owner;
}

function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${randomBytes(6).toString("hex")}`);
}

/** Writes `data` to `target` atomically with the given mode (and owner). */
export async function writeFileAtomic(
  target: string,
  data: string | Uint8Array,
  options: WriteOptions,
): Promise<void> {
  await replaceAtomically(target, options, async (temp) => {
    // `wx` with mode: the file never exists with looser permissions, even briefly.
    const handle = await open(temp, "wx", options.mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/** Copies `source` to `target` atomically, then applies the mode (and owner). */
export async function copyFileAtomic(
  source: string,
  target: string,
  options: WriteOptions,
): Promise<void> {
  await replaceAtomically(target, options, async (temp) => {
    await copyFile(source, temp);
    const handle = await open(temp, "r+");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

async function replaceAtomically(
  target: string,
  options: WriteOptions,
  fill: (temp: string) => Promise<void>,
): Promise<void> {
  const temp = tempPathFor(target);
  try {
    await fill(temp);
    const handle = await open(temp, "r");
    try {
      // chmod after writing: umask must not narrow the mode, and copyFile keeps the source's.
      await handle.chmod(options.mode);
      if (options.owner) await chownOrExplain(temp, target, options.owner);
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => {});
    throw err;
  }
}

/** chown, with the one fix for EPERM spelled out: --owner needs root. */
export async function chownOrExplain(path: string, shownAs: string, owner: Owner): Promise<void> {
  try {
    await chown(path, owner.uid, owner.gid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new InjectorError(
      "owner-not-permitted",
      `could not hand ${shownAs} to ${owner.uid}:${owner.gid}: ${code}; --owner needs this ` +
        "container to run as root (securityContext.runAsUser: 0), or drop --owner and give the " +
        "pod an fsGroup with --group-readable",
      { cause: err },
    );
  }
}

/** The SHA-256 of a file's content, as lowercase hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
