import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { lookupMirror, type MirrorLookup, writeMark } from "./cache.ts";
import { CheckoutError, type CheckoutOptions, type CheckoutResult, Run } from "./checkout-run.ts";
import { classifyFailure, GitError, git } from "./git.ts";
import { copyFromMirror, emptyDir, shareMirror } from "./mirror-copy.ts";
import { isFullObjectName } from "./refs.ts";
import { updateSubmodules } from "./submodules.ts";
import { checkoutCommit, localCommit, originError, resolveTarget } from "./target.ts";
import { parseRepoUrl } from "./url.ts";

export {
  CheckoutError,
  type CheckoutEvent,
  type CheckoutOptions,
  type CheckoutResult,
  type Mode,
  type Source,
} from "./checkout-run.ts";

/**
 * Puts `target` of `url` into `dest`: from the cache's mirror when it has one (fetching from
 * origin only what the mirror lacks), from origin otherwise, and in place when `dest` already
 * holds the repository. A broken cache never fails the job: the checkout falls back to origin.
 */
export async function checkoutRepository(o: CheckoutOptions): Promise<CheckoutResult> {
  const run = new Run(o);
  const destState = await run.phase("prepare", () => prepareDest(o));
  if (destState === "same-repo") {
    try {
      await updateInPlace(run);
    } catch (e) {
      // A workspace left broken by an interrupted attempt: start it over rather than fail.
      if (e instanceof CheckoutError || !(e instanceof GitError) || o.signal?.aborted) throw e;
      run.warn(
        "in-place-failed",
        `could not update ${o.dest} in place: ${e.message}; starting over`,
        e,
      );
      await emptyDir(o.dest);
      await freshCheckout(run);
    }
  } else {
    await freshCheckout(run);
  }
  if (o.submodules) await run.phase("submodules", () => updateSubmodules(run));
  if (o.recordFile) await writeRecord(o.recordFile, run.result, o.dest);
  return run.result;
}

async function freshCheckout(run: Run): Promise<void> {
  const o = run.o;
  const lookup: MirrorLookup = o.layout
    ? await lookupMirror(o.layout, o.url.key)
    : { state: "no-cache", reason: "no cache directory given" };

  if (lookup.state === "found") {
    try {
      run.result.source = "hit";
      await run.phase("clone", () => cloneFromMirror(run, lookup.path, lookup.link));
      await finish(run);
      return;
    } catch (e) {
      if (e instanceof CheckoutError || o.signal?.aborted) throw e;
      await cacheFailed(run, e as Error, lookup.path);
    }
  } else {
    run.result.source = "miss";
    run.result.cacheReason = missReason(lookup);
    run.warn(
      "cache-miss",
      `cache miss for ${o.url.fetchUrl}: ${run.result.cacheReason}; cloning from origin`,
    );
  }
  await run.phase("clone", () =>
    run
      .origin("clone", ["clone", "--no-checkout", "--progress", "--", o.url.fetchUrl, o.dest])
      .catch((e: unknown) => {
        throw (e instanceof GitError && originError(run, "clone", e)) || e;
      }),
  );
  await finish(run);
}

function missReason(lookup: MirrorLookup): string {
  if (lookup.state === "no-cache") return `cache not readable (${lookup.reason})`;
  if (lookup.state === "broken")
    return `mirror marked broken (${lookup.mark.reason}), waiting for sync`;
  return "no mirror for this repository";
}

/** The mirror failed us mid-way: mark it if it looks corrupt, empty dest, use origin. */
async function cacheFailed(run: Run, err: Error, mirror: string): Promise<void> {
  const o = run.o;
  const looksCorrupt = err instanceof GitError && classifyFailure(err.stderr) === "corrupt";
  // A copy that lost every retry to a repack looks the same as a corrupt mirror. Only a mirror
  // that fails git's own check is marked: a mark makes the next sync clone it anew from origin.
  const corrupt = looksCorrupt && !(await mirrorIsSound(run, mirror));
  run.result.source = "fallback";
  run.result.cacheReason = corrupt
    ? "mirror is corrupt"
    : `mirror could not be used (${err.message})`;
  run.warn(
    "cache-fallback",
    `could not use the mirror for ${o.url.fetchUrl}: ${err.message}; cloning from origin`,
    err,
  );
  if (corrupt && o.layout) {
    const failed = await writeMark(o.layout, o.url.key, {
      url: o.url.fetchUrl,
      reason: err.message.slice(0, 500),
      at: new Date().toISOString(),
    });
    if (failed)
      run.warn(
        "mark-failed",
        `could not mark the mirror broken: ${failed.message}; sync will not know`,
        failed,
      );
    else run.result.brokenMarkWritten = true;
  }
  await emptyDir(o.dest);
}

/** Whether the mirror passes `git fsck --connectivity-only` now (every object reachable). */
async function mirrorIsSound(run: Run, mirror: string): Promise<boolean> {
  try {
    const args = ["fsck", "--connectivity-only", "--no-dangling", "--no-progress"];
    await git(args, run.gitOpts("prepare", mirror));
    return true;
  } catch {
    return false;
  }
}

async function cloneFromMirror(run: Run, mirror: string, link: string): Promise<void> {
  const o = run.o;
  const opts = run.gitOpts("clone");
  if (o.mode === "reference") {
    await shareMirror(mirror, link, o.dest, opts);
    return;
  }
  await copyFromMirror(mirror, o.dest, {
    ...opts,
    attempts: o.copyAttempts ?? 4,
    onRetry: (attempt, why) =>
      run.warn("copy-retry", `copy ${attempt} of the mirror is unusable: ${why}; copying again`),
  });
}

/** Origin URL, the commit, the worktree: shared by every fresh checkout path. */
async function finish(run: Run): Promise<void> {
  const o = run.o;
  await git(["remote", "set-url", "--", "origin", o.url.fetchUrl], run.gitOpts("prepare", o.dest));
  run.result.commit = await run.phase("fetch", () => resolveTarget(run));
  await run.phase("checkout", () => checkoutCommit(run));
}

type DestState = "empty" | "same-repo";

/** Creates `dest`, or decides what its current content means (see issue 3, step 5). */
async function prepareDest(o: CheckoutOptions): Promise<DestState> {
  await mkdir(o.dest, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST" && e.code !== "ENOTDIR") throw e;
    throw new CheckoutError(
      "dest-not-empty",
      `could not check out into ${o.dest}: it (or a directory above it) is a file, not a ` +
        "directory; remove the file or point --dest elsewhere",
      { cause: e },
    );
  });
  const entries = await readdir(o.dest);
  if (entries.length === 0) return "empty";
  if (entries.includes(".git") && (await holdsRepository(o))) return "same-repo";
  if (!o.wipe) {
    throw new CheckoutError(
      "dest-not-empty",
      `could not check out into ${o.dest}: it is not empty and does not hold ${o.url.fetchUrl}; ` +
        "empty it, point --dest elsewhere, or pass --wipe to delete its content",
    );
  }
  await emptyDir(o.dest);
  return "empty";
}

/**
 * Whether `dest` holds this repository: its origin has the same identity, or is still this
 * repository's mirror (an attempt interrupted between the mirror clone and `remote set-url`).
 */
async function holdsRepository(o: CheckoutOptions): Promise<boolean> {
  try {
    const r = await git(["config", "--get", "remote.origin.url"], { cwd: o.dest });
    const origin = parseRepoUrl(r.stdout.trim());
    if (origin.identity === o.url.identity) return true;
    const base = origin.path.split("/").pop() ?? "";
    return (
      origin.transport === "file" && o.layout !== undefined && base.startsWith(`${o.url.key}.`)
    );
  } catch {
    return false;
  }
}

/** The workspace already holds this repository (a retried job): fetch what is missing there. */
async function updateInPlace(run: Run): Promise<void> {
  const o = run.o;
  run.result.source = "in-place";
  await rm(join(o.dest, ".git", "index.lock"), { force: true });
  await git(["remote", "set-url", "--", "origin", o.url.fetchUrl], run.gitOpts("prepare", o.dest));

  const lookup = o.layout ? await lookupMirror(o.layout, o.url.key) : undefined;
  const { commit } = o.target;
  if (lookup?.state === "found" && isFullObjectName(commit) && !(await localCommit(run, commit))) {
    // Objects the mirror has come over the local pack protocol; a failure only costs the try.
    await git(
      ["-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "--no-tags", "--", lookup.path, commit],
      run.gitOpts("fetch", o.dest),
    ).catch((e: Error) =>
      run.warn("cache-fetch-failed", `could not fetch ${commit} from the mirror: ${e.message}`, e),
    );
  }
  run.result.commit = await run.phase("fetch", () => resolveTarget(run));
  await run.phase("checkout", async () => {
    await checkoutCommit(run);
    await git(["clean", "-ffdxq"], run.gitOpts("checkout", o.dest));
  });
}

/** The small JSON record later steps read: what was checked out, from where. */
async function writeRecord(file: string, r: CheckoutResult, dest: string): Promise<void> {
  const record = {
    url: r.url,
    commit: r.commit,
    ref: r.ref ?? null,
    mode: r.mode,
    source: r.source,
    dest,
    checkedOutAt: new Date().toISOString(),
  };
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`);
  await rename(tmp, file);
}
