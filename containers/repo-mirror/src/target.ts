/** Which commit to check out, and fetching from origin only what the workspace lacks. */
import { CheckoutError, type Run } from "./checkout-run.ts";
import { classifyFailure, GitError, git } from "./git.ts";
import { fetchRefspec, isFullObjectName } from "./refs.ts";

/**
 * Finds the commit to check out, asking origin only for what is missing locally. A full commit
 * already present needs no network at all; HEAD means "the tip of the ref", which only origin
 * knows, so it is fetched, with the local copy as the fallback when origin is down.
 */
export async function resolveTarget(run: Run): Promise<string> {
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
    return await revParse(run, "FETCH_HEAD^{commit}");
  } catch (e) {
    const originDown =
      e instanceof CheckoutError && (e.code === "origin-unreachable" || e.code === "origin-auth");
    if (!originDown || run.o.strictOrigin) throw e;
    const fallback = ref
      ? await localRef(run, ref)
      : await revParse(run, "HEAD").catch(() => undefined);
    if (!fallback) throw e;
    run.warn(
      "origin-unreachable",
      `${(e as Error).message}; checking out ${ref ?? "HEAD"} as the cache has it (${fallback.slice(0, 12)})`,
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
    if (kind === "missing-ref") {
      throw new CheckoutError(
        "unknown-commit",
        `could not fetch ${refspecs.join(" ")} from ${run.o.url.fetchUrl}: origin has no such ref; ` +
          "check --commit (BUILDKITE_COMMIT) and --ref, and that they were pushed to this repository",
        { cause: e },
      );
    }
    throw originError(run, "fetch", e) ?? e;
  }
}

/**
 * The job's own failure to reach origin, as a CheckoutError saying what to fix: origin cannot
 * be reached, or it refused the credentials. Undefined for any other git failure.
 */
export function originError(run: Run, action: string, e: GitError): CheckoutError | undefined {
  const url = run.o.url.fetchUrl;
  switch (classifyFailure(e.stderr)) {
    case "unreachable":
      return new CheckoutError(
        "origin-unreachable",
        `could not ${action} from ${url}: origin is unreachable (${e.message}); ` +
          "check the network and that the repository URL is right",
        { cause: e },
      );
    case "auth":
      return new CheckoutError(
        "origin-auth",
        `could not ${action} from ${url}: origin refused the credentials (${e.message}); ` +
          "check --https-token-file (with --https-username) or --ssh-key-file, and that they " +
          "may read this repository",
        { cause: e },
      );
    default:
      return undefined;
  }
}

/**
 * The commit, when the workspace has it and every object it needs. A copy of the mirror taken
 * while sync fetched can hold a commit newer than the refs it copied with only some of its
 * trees and blobs (git writes them one by one); checked out, it would leave a broken
 * workspace. Only objects no ref reaches are walked: what the refs reach was complete in the
 * mirror before they pointed at it.
 */
export async function localCommit(run: Run, commit: string): Promise<string | undefined> {
  const sha = await revParse(run, `${commit}^{commit}`).catch(() => undefined);
  if (sha === undefined) return undefined;
  const walk = ["rev-list", "--objects", "--quiet", sha, "--not", "--all"];
  const complete = await git(walk, run.gitOpts("fetch", run.o.dest)).then(
    () => true,
    () => false,
  );
  return complete ? sha : undefined;
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

export async function checkoutCommit(run: Run): Promise<void> {
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
