import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type CacheLayout, lookupMirror, type MirrorLookup, writeMark } from "./cache.ts";
import { configEnv, type PreparedCredentials } from "./credentials.ts";
import { classifyFailure, GitError, type GitOptions, type GitProgress, git } from "./git.ts";
import { copyFromMirror, emptyDir, shareMirror } from "./mirror-copy.ts";
import { fetchRefspec, isFullObjectName, type Target } from "./refs.ts";
import { parseRepoUrl, type RepoUrl } from "./url.ts";

export type Mode = "reference" | "dissociate";

/** Everything a checkout needs, already validated. */
export interface CheckoutOptions {
  url: RepoUrl;
  target: Target;
  /** The cache layout, or undefined when no cache was given. */
  layout?: CacheLayout;
  dest: string;
  mode: Mode;
  submodules: boolean;
  /** Empty a non-empty destination that holds something else instead of refusing. */
  wipe: boolean;
  /** Fail instead of warning when origin is unreachable but the cache could serve the ref. */
  strictOrigin: boolean;
  /** git's checkout.workers; 0 means one per CPU. */
  checkoutWorkers: number;
  credentials: PreparedCredentials;
  /** Where the JSON record goes; undefined writes none. */
  recordFile?: string;
  /** Copies of the mirror to try while sync repacks it. */
  copyAttempts?: number;
  signal?: AbortSignal;
  onEvent?: (e: CheckoutEvent) => void;
}

/** How the workspace got its objects. */
export type Source = "hit" | "miss" | "fallback" | "in-place";

export type CheckoutEvent =
  | { type: "progress"; phase: string; progress: GitProgress }
  | { type: "phase"; phase: string; durationMs: number }
  | { type: "warning"; code: string; message: string; err?: Error };

export interface CheckoutResult {
  url: string;
  key: string;
  commit: string;
  ref?: string;
  mode: Mode;
  source: Source;
  /** Why the cache was not used (miss, fallback), if it was not. */
  cacheReason?: string;
  originContacted: boolean;
  /** Size of the packs origin sent (what crossed the network, less protocol framing). */
  originBytes: number;
  originObjects: number;
  /** Milliseconds per phase. */
  phases: Record<string, number>;
  warnings: string[];
  brokenMarkWritten: boolean;
  submodules: number;
}

/** A failure that is the job's, not the cache's: no fallback to origin helps it. */
export class CheckoutError extends Error {
  readonly code: "unknown-commit" | "origin-unreachable" | "dest-not-empty";
  constructor(code: CheckoutError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CheckoutError";
    this.code = code;
  }
}

/** Per-run state: the env git runs with, bytes counted, phases timed. */
class Run {
  readonly o: CheckoutOptions;
  readonly result: CheckoutResult;
  readonly env: Record<string, string>;
  constructor(o: CheckoutOptions) {
    this.o = o;
    this.env = { ...o.credentials.env, ...configEnv(o.credentials.config) };
    this.result = {
      url: o.url.fetchUrl,
      key: o.url.key,
      commit: "",
      ref: o.target.ref,
      mode: o.mode,
      source: "miss",
      originContacted: false,
      originBytes: 0,
      originObjects: 0,
      phases: {},
      warnings: [],
      brokenMarkWritten: false,
      submodules: 0,
    };
  }

  gitOpts(phase: string, cwd?: string): GitOptions {
    return {
      cwd,
      env: this.env,
      signal: this.o.signal,
      secrets: this.o.credentials.secrets,
      onProgress: (progress) => this.o.onEvent?.({ type: "progress", phase, progress }),
    };
  }

  async phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      const ms = Math.round(performance.now() - start);
      this.result.phases[name] = (this.result.phases[name] ?? 0) + ms;
      this.o.onEvent?.({ type: "phase", phase: name, durationMs: ms });
    }
  }

  warn(code: string, message: string, err?: Error): void {
    this.result.warnings.push(message);
    this.o.onEvent?.({ type: "warning", code, message, err });
  }

  /**
   * A git call that talks to origin, its bytes counted as the size of the packs it adds. Git
   * prints no progress for transfers under about two seconds, and unpacks small ones into loose
   * objects, so `fetch.unpackLimit=1` keeps every received pack as it arrived.
   */
  async origin(phase: string, args: string[]) {
    this.result.originContacted = true;
    const packDir = join(this.o.dest, ".git", "objects", "pack");
    const before = await packSizes(packDir);
    const cwd = args[0] === "clone" ? undefined : this.o.dest;
    try {
      const r = await git(["-c", "fetch.unpackLimit=1", ...args], this.gitOpts(phase, cwd));
      this.result.originObjects += r.receivedObjects;
      return r;
    } finally {
      const after = await packSizes(packDir);
      for (const [name, size] of after) if (!before.has(name)) this.result.originBytes += size;
    }
  }
}

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
      await cacheFailed(run, e as Error);
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
    run.origin("clone", ["clone", "--no-checkout", "--progress", "--", o.url.fetchUrl, o.dest]),
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
async function cacheFailed(run: Run, err: Error): Promise<void> {
  const o = run.o;
  const corrupt = err instanceof GitError && classifyFailure(err.stderr) === "corrupt";
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

async function packSizes(dir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".pack"))) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st) sizes.set(name, st.size);
  }
  return sizes;
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

/**
 * Finds the commit to check out, asking origin only for what is missing locally. A full commit
 * already present needs no network at all; HEAD means "the tip of the ref", which only origin
 * knows, so it is fetched, with the local copy as the fallback when origin is down.
 */
async function resolveTarget(run: Run): Promise<string> {
  const { commit, ref } = run.o.target;
  if (commit !== "HEAD") {
    const local = await localCommit(run, commit);
    if (local) return local;
    if (ref) await fetchRef(run, ref, true);
    const afterRef = await localCommit(run, commit);
    if (afterRef) return afterRef;
    // Servers that allow it (GitHub does) hand out a reachable commit by name.
    if (isFullObjectName(commit)) await fetchOrigin(run, [commit], true);
    const byName = await localCommit(run, commit);
    if (byName) return byName;
    throw new CheckoutError(
      "unknown-commit",
      `could not find commit ${commit} of ${run.o.url.fetchUrl}${ref ? ` (ref ${ref})` : ""}: ` +
        "it is in neither the cache nor origin; check the commit and that it was pushed",
    );
  }

  try {
    await fetchRef(run, ref ?? "HEAD", false);
    return await revParse(run, "FETCH_HEAD");
  } catch (e) {
    if (!(e instanceof CheckoutError && e.code === "origin-unreachable") || run.o.strictOrigin)
      throw e;
    const fallback = ref
      ? await localRef(run, ref)
      : await revParse(run, "HEAD").catch(() => undefined);
    if (!fallback) throw e;
    run.warn(
      "origin-unreachable",
      `origin ${run.o.url.fetchUrl} is unreachable; checking out ${ref ?? "HEAD"} as the cache has it (${fallback.slice(0, 12)})`,
      e,
    );
    return fallback;
  }
}

/** Fetches a ref; a bare name that is not a branch is retried as written (tags, DWIM). */
async function fetchRef(run: Run, ref: string, tolerateMissing: boolean): Promise<void> {
  const spec = ref === "HEAD" ? "HEAD" : fetchRefspec(ref);
  const missing = await fetchOrigin(run, [spec], true);
  if (missing && spec !== ref) {
    if (!(await fetchOrigin(run, [ref], tolerateMissing))) return;
  } else if (missing && !tolerateMissing) {
    throw new CheckoutError(
      "unknown-commit",
      `could not fetch ref ${ref} from ${run.o.url.fetchUrl}: origin has no such ref`,
    );
  }
}

/**
 * `git fetch origin -- <refspecs>`. Returns true if origin lacks the ref (and that is
 * tolerated); throws CheckoutError("origin-unreachable") when origin cannot be reached.
 */
async function fetchOrigin(
  run: Run,
  refspecs: string[],
  tolerateMissing: boolean,
): Promise<boolean> {
  try {
    const args = ["fetch", "--progress", "--no-tags", "--no-recurse-submodules", "--", "origin"];
    await run.origin("fetch", [...args, ...refspecs]);
    return false;
  } catch (e) {
    if (!(e instanceof GitError)) throw e;
    const kind = classifyFailure(e.stderr);
    if (kind === "missing-ref" && tolerateMissing) return true;
    if (kind === "unreachable") {
      throw new CheckoutError(
        "origin-unreachable",
        `could not fetch from ${run.o.url.fetchUrl}: origin is unreachable (${e.message}); ` +
          "check the network and the credentials",
        { cause: e },
      );
    }
    if (kind === "missing-ref") {
      throw new CheckoutError(
        "unknown-commit",
        `could not fetch ${refspecs.join(" ")} from ${run.o.url.fetchUrl}: origin has no such ref`,
        { cause: e },
      );
    }
    throw e;
  }
}

async function localCommit(run: Run, commit: string): Promise<string | undefined> {
  return revParse(run, `${commit}^{commit}`).catch(() => undefined);
}

async function localRef(run: Run, ref: string): Promise<string | undefined> {
  const name = ref.replace(/^\+/, "").split(":")[0] as string;
  for (const candidate of [`refs/remotes/origin/${name.replace(/^refs\/heads\//, "")}`, name]) {
    const sha = await localCommit(run, candidate);
    if (sha) return sha;
  }
  return undefined;
}

async function revParse(run: Run, rev: string): Promise<string> {
  const r = await git(
    ["rev-parse", "--verify", "--quiet", "--end-of-options", rev],
    run.gitOpts("fetch", run.o.dest),
  );
  return r.stdout.trim();
}

async function checkoutCommit(run: Run): Promise<void> {
  const workers = String(run.o.checkoutWorkers);
  await git(
    [
      "-c",
      `checkout.workers=${workers}`,
      "checkout",
      "--progress",
      "--force",
      "--detach",
      run.result.commit,
      "--",
    ],
    run.gitOpts("checkout", run.o.dest),
  );
}

type DestState = "empty" | "same-repo";

/** Creates `dest`, or decides what its current content means (see issue 3, step 5). */
async function prepareDest(o: CheckoutOptions): Promise<DestState> {
  await mkdir(o.dest, { recursive: true });
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

/**
 * Submodules, each from its own mirror when the cache has one (`--reference`, plus
 * `--dissociate` in that mode), from its origin otherwise. URLs from `.gitmodules` are checked
 * like `--repo`: the repository's content decides them, so they are untrusted input.
 */
async function updateSubmodules(run: Run): Promise<void> {
  const o = run.o;
  const hasModules = await stat(join(o.dest, ".gitmodules")).then(
    () => true,
    () => false,
  );
  if (!hasModules) return;
  const opts = run.gitOpts("submodules", o.dest);
  await git(["submodule", "sync", "--recursive"], opts);
  await git(["submodule", "init"], opts);

  const urls = await git(["config", "--get-regexp", "^submodule\\..*\\.url$"], opts).catch(() => ({
    stdout: "",
  }));
  for (const line of urls.stdout.split("\n").filter(Boolean)) {
    const [key = "", url = ""] = line.split(/ (.*)/s);
    const name = key.replace(/^submodule\./, "").replace(/\.url$/, "");
    const subUrl = parseRepoUrl(url, `submodule ${name} url`);
    const path = (
      await git(["config", "-f", ".gitmodules", "--get", `submodule.${name}.path`], opts)
    ).stdout.trim();
    const args = ["submodule", "update", "--init", "--recursive", "--force", "--progress"];
    const lookup = o.layout ? await lookupMirror(o.layout, subUrl.key) : undefined;
    if (lookup?.state === "found") {
      args.push("--reference", lookup.link);
      if (o.mode === "dissociate") args.push("--dissociate");
    }
    run.result.originContacted = true;
    const r = await git([...args, "--", path], opts);
    run.result.originObjects += r.receivedObjects;
    run.result.submodules++;
  }
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
