import { GitError, git } from "./git.ts";
import { UsageError } from "./url.ts";

/** What to check out: a commit (or HEAD: the tip of `ref`) and the ref that leads to it. */
export interface Target {
  /** A hex object name (abbreviated allowed) or "HEAD". */
  commit: string;
  /** A branch, tag or refspec; undefined means origin's default branch. */
  ref?: string;
}

const HEX = /^[0-9a-f]{4,64}$/i;

/** Accepts "HEAD" or a 4 to 64 digit hex object name; refuses anything else before git runs. */
export function checkCommit(commit: string, option = "--commit"): string {
  if (commit === "HEAD") return commit;
  if (!HEX.test(commit)) {
    throw new UsageError(
      option,
      `${option} ${JSON.stringify(commit)} is not a commit; expected a hex object name ` +
        '(4 to 64 digits) or "HEAD"',
    );
  }
  return commit.toLowerCase();
}

/** True for a full SHA-1 or SHA-256 object name, which can be asked for by name. */
export function isFullObjectName(commit: string): boolean {
  return /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(commit);
}

/**
 * Checks a branch, tag or refspec the way git does (`git check-ref-format`), after refusing
 * option-like input. A refspec's sides are checked one by one; a leading "+" is allowed.
 */
export async function checkRef(ref: string, option = "--ref"): Promise<string> {
  if (ref === "" || ref.startsWith("-")) {
    throw new UsageError(
      option,
      `${option} ${JSON.stringify(ref)} is ${ref === "" ? "empty" : 'option-like (starts with "-")'}; ` +
        "give a branch, tag or refspec",
    );
  }
  const sides = ref.replace(/^\+/, "").split(":");
  if (sides.length > 2)
    throw new UsageError(option, `${option} ${JSON.stringify(ref)} has more than one ":"`);
  for (const side of sides) {
    if (side === "" && sides.length === 2) continue;
    const ok = await checkRefFormat(side);
    if (!ok) {
      throw new UsageError(
        option,
        `${option} ${JSON.stringify(ref)} is not a valid ref name (git check-ref-format refused ` +
          `${JSON.stringify(side)}); see "git help check-ref-format" for the rules`,
      );
    }
  }
  return ref;
}

async function checkRefFormat(name: string): Promise<boolean> {
  if (name.startsWith("-")) return false;
  try {
    await git(["check-ref-format", "--allow-onelevel", name]);
    return true;
  } catch (e) {
    if (e instanceof GitError && e.exitCode === 1) return false;
    throw e;
  }
}

/**
 * The ref Buildkite means when none is given: BUILDKITE_REFSPEC, else the pull request head
 * for GitHub-style providers, else the tag, else the branch (the reference's §3 inputs).
 */
export function refFromBuildkiteEnv(env: Record<string, string | undefined>): string | undefined {
  if (env.BUILDKITE_REFSPEC) return env.BUILDKITE_REFSPEC;
  const pr = env.BUILDKITE_PULL_REQUEST;
  if (pr && /^\d+$/.test(pr)) {
    const provider = env.BUILDKITE_PIPELINE_PROVIDER ?? "github";
    if (provider.startsWith("github")) return `refs/pull/${pr}/head`;
  }
  if (env.BUILDKITE_TAG) return `refs/tags/${env.BUILDKITE_TAG}`;
  return env.BUILDKITE_BRANCH || undefined;
}

/**
 * The refspec to fetch `ref` from origin with. Branch names land in their remote-tracking ref
 * so the next fetch negotiates from them; full refs and explicit refspecs are fetched as given
 * and read back from FETCH_HEAD.
 */
export function fetchRefspec(ref: string): string {
  if (ref.includes(":")) return ref;
  if (ref.startsWith("refs/heads/")) return `+${ref}:refs/remotes/origin/${ref.slice(11)}`;
  if (ref.startsWith("refs/") || ref.startsWith("+")) return ref;
  return `+refs/heads/${ref}:refs/remotes/origin/${ref}`;
}
