import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GitError, type GitOptions, git } from "./git.ts";

/**
 * Clones a mirror into `dest` so that the workspace stands alone: git's local clone copies the
 * pack files and their indexes (`--no-hardlinks`: in a pod the cache is another, read-only
 * mount, so links are impossible anyway, and the benchmark then measures what pods see). This
 * skips both the `--dissociate` repack and the index-pack of a network clone.
 *
 * A local clone reads the mirror's refs first and copies objects/ afterwards, so it only misses
 * objects if sync repacks (adds a pack, removes the old ones) while the files are copied. The
 * pack list is compared before and after; if it changed, the copy is redone (bounded), and the
 * last attempt is verified with `fsck --connectivity-only` instead of trusting it.
 */
export async function copyFromMirror(
  mirror: string,
  dest: string,
  opts: GitOptions & { attempts: number; onRetry?: (attempt: number, why: string) => void },
): Promise<{ attempts: number; verified: boolean }> {
  for (let attempt = 1; ; attempt++) {
    const before = await packList(mirror);
    try {
      await git(
        ["clone", "--no-checkout", "--no-hardlinks", "--progress", "--", mirror, dest],
        opts,
      );
    } catch (e) {
      // A pack deleted between git's listing and its copy: "failed to copy file".
      if (
        attempt >= opts.attempts ||
        !(e instanceof GitError) ||
        !/copy|no such file/i.test(e.stderr)
      ) {
        throw e;
      }
      opts.onRetry?.(attempt, "a mirror file vanished during the copy (sync gc)");
      await emptyDir(dest);
      continue;
    }
    if ((await packList(mirror)) === before) return { attempts: attempt, verified: false };
    if (attempt >= opts.attempts) {
      await git(["fsck", "--connectivity-only", "--no-dangling", "--no-progress"], {
        ...opts,
        cwd: dest,
      });
      return { attempts: attempt, verified: true };
    }
    opts.onRetry?.(attempt, "the mirror was repacked during the copy (sync gc)");
    await emptyDir(dest);
  }
}

/**
 * Clones a mirror sharing its objects (`--shared`, an alternates file, nothing copied). The
 * alternates entry names the stable link, not the store generation the link pointed at, so the
 * workspace follows a rebuilt mirror instead of breaking when the old one is retired.
 */
export async function shareMirror(mirror: string, link: string, dest: string, opts: GitOptions) {
  await git(["clone", "--no-checkout", "--shared", "--progress", "--", mirror, dest], opts);
  await writeFile(
    join(dest, ".git", "objects", "info", "alternates"),
    `${join(link, "objects")}\n`,
  );
}

async function packList(mirror: string): Promise<string> {
  const names = await readdir(join(mirror, "objects", "pack")).catch(() => [] as string[]);
  return names
    .filter((n) => /^pack-[0-9a-f]+\.(pack|idx)$/.test(n))
    .sort()
    .join(",");
}

/** Removes everything inside `dir`, keeping `dir` itself (it may be a mount point). */
export async function emptyDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(entries.map((e) => rm(join(dir, e), { recursive: true, force: true })));
}
