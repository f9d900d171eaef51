import { spawn } from "node:child_process";

/** One parsed git progress line, e.g. "Receiving objects:  45% (450/1000), 1.20 MiB | 2.40 MiB/s". */
export interface GitProgress {
  stage: string;
  percent: number;
  processed: number;
  total: number;
  bytes?: number;
  bytesPerSecond?: number;
}

export interface GitOptions {
  cwd?: string;
  /** Added to the scrubbed base environment (see `gitEnv`). */
  env?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: GitProgress) => void;
  /** Secret values to remove from the error text. */
  secrets?: readonly string[];
}

export interface GitResult {
  stdout: string;
  stderr: string;
  /** Bytes received from the remote, from the last "Receiving objects" line (0 if none). */
  receivedBytes: number;
  /** Objects the remote sent, from its "Total N" line (0 if none). */
  receivedObjects: number;
}

/** A failed git call. `stderr` is kept (scrubbed) so callers can classify the failure. */
export class GitError extends Error {
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(args: readonly string[], exitCode: number | null, stderr: string) {
    const tail = stderr.trim().split("\n").slice(-4).join("; ");
    super(`git ${subcommand(args)} exited with ${exitCode}: ${tail || "no output"}`);
    this.name = "GitError";
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The git command a call runs, past its leading `-c name=value` options: "clone", "fetch". */
function subcommand(args: readonly string[]): string {
  let i = 0;
  while (args[i] === "-c") i += 2;
  return args[i] ?? "";
}

// Variables that would redirect git to another repository or inject config behind our back.
const DROPPED_ENV =
  /^(GIT_DIR|GIT_WORK_TREE|GIT_INDEX_FILE|GIT_OBJECT_DIRECTORY|GIT_ALTERNATE_OBJECT_DIRECTORIES|GIT_COMMON_DIR|GIT_NAMESPACE|GIT_CONFIG_COUNT|GIT_CONFIG_KEY_\d+|GIT_CONFIG_VALUE_\d+|GIT_CONFIG_PARAMETERS|GIT_SSH_COMMAND|GIT_SSH|GIT_ASKPASS|GIT_EXEC_PATH|GIT_TRACE\w*)$/;

/**
 * The environment every git call starts from: the process env minus variables that redirect
 * git, plus: no terminal prompts (a prompt would hang an init container), and the C locale so
 * progress and error text parse the same everywhere.
 */
export function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !DROPPED_ENV.test(k)) env[k] = v;
  }
  return { ...env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", LANGUAGE: "C", ...extra };
}

const PROGRESS =
  /^(?:remote: )?([A-Za-z][A-Za-z ]*?):\s+(\d+)% \((\d+)\/(\d+)\)(?:, ([\d.]+) (bytes|[KMG]iB)(?: \| ([\d.]+) (bytes|[KMG]iB)\/s)?)?/;
const UNITS: Record<string, number> = { bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Parses one progress fragment (git separates updates with \r); undefined if it is not one. */
export function parseProgress(line: string): GitProgress | undefined {
  const m = PROGRESS.exec(line.trim());
  if (!m) return undefined;
  const p: GitProgress = {
    stage: m[1] as string,
    percent: Number(m[2]),
    processed: Number(m[3]),
    total: Number(m[4]),
  };
  if (m[5] && m[6]) p.bytes = Math.round(Number(m[5]) * (UNITS[m[6]] ?? 1));
  if (m[7] && m[8]) p.bytesPerSecond = Math.round(Number(m[7]) * (UNITS[m[8]] ?? 1));
  return p;
}

/**
 * Runs the real git binary with an argument vector (never a shell). Callers put `--` before
 * any URL, path or ref they pass, so nothing user-given is read as an option.
 */
export function git(args: readonly string[], opts: GitOptions = {}): Promise<GitResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("git", args, {
      cwd: opts.cwd,
      env: gitEnv(opts.env),
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    let err = "";
    let pending = "";
    let receivedBytes = 0;
    let receivedObjects = 0;
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => {
      const text = c.toString("utf8");
      err += text;
      if (err.length > 256 * 1024) err = err.slice(-128 * 1024);
      const parts = (pending + text).split(/[\r\n]/);
      pending = parts.pop() ?? "";
      for (const part of parts) {
        const total = /^remote: Total (\d+)/.exec(part);
        if (total) receivedObjects += Number(total[1]);
        const p = parseProgress(part);
        if (!p) continue;
        if (p.stage === "Receiving objects" && p.bytes !== undefined) receivedBytes = p.bytes;
        opts.onProgress?.(p);
      }
    });
    child.on("error", (e) => reject(new GitError(args, null, scrub(e.message, opts.secrets))));
    child.on("close", (code) => {
      const stderr = scrub(err, opts.secrets);
      if (code === 0) {
        const stdout = Buffer.concat(out).toString("utf8");
        resolvePromise({ stdout, stderr, receivedBytes, receivedObjects });
      } else {
        reject(new GitError(args, code, stderr));
      }
    });
  });
}

/** Removes every secret value from a text. */
export function scrub(text: string, secrets: readonly string[] = []): string {
  let t = text;
  for (const s of secrets) if (s.length >= 4) t = t.split(s).join("***");
  return t.replace(/(:\/\/[^/@:\s]*):[^/@\s]*@/g, "$1:***@");
}

/** Failure classes that decide what checkout does next. */
export type GitFailure = "unreachable" | "auth" | "missing-ref" | "corrupt" | "other";

/**
 * Classifies git's stderr: origin down, credentials refused, a ref or commit the remote lacks,
 * a broken repository.
 */
export function classifyFailure(stderr: string): GitFailure {
  const s = stderr.toLowerCase();
  if (
    /bad object|is corrupt|inflate|missing blob|missing tree|missing commit|unable to read|loose object .* is corrupt|packfile .* cannot be accessed|failed to copy file|did not send all necessary objects|fatal: not a git repository|invalid index-pack|object file .* is empty|bad pack/.test(
      s,
    )
  ) {
    return "corrupt";
  }
  if (
    /couldn't find remote ref|not our ref|no such remote ref|remote error: upload-pack: not our ref|invalid refspec|unadvertised object/.test(
      s,
    )
  ) {
    return "missing-ref";
  }
  // Before "unreachable": a refused login also ends in "could not read from remote repository".
  if (
    /authentication failed|terminal prompts disabled|could not read (username|password)|permission denied \(publickey|access denied|invalid username or password|http basic: access denied|the requested url returned error: 40[13]/.test(
      s,
    )
  ) {
    return "auth";
  }
  if (
    /could not resolve host|connection refused|connection timed out|unable to connect|could not read from remote repository|unable to access|network is unreachable|no route to host|connection reset|failed to connect|the remote end hung up unexpectedly|does not appear to be a git repository|repository .* not found/.test(
      s,
    )
  ) {
    return "unreachable";
  }
  return "other";
}
