/** The checkout's options, events and result, and the per-run state its steps share. */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { CacheLayout } from "./cache.ts";
import { configEnv, type PreparedCredentials } from "./credentials.ts";
import { type GitOptions, type GitProgress, git } from "./git.ts";
import type { Target } from "./refs.ts";
import type { RepoUrl } from "./url.ts";

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
  readonly code: "unknown-commit" | "origin-unreachable" | "origin-auth" | "dest-not-empty";
  constructor(code: CheckoutError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CheckoutError";
    this.code = code;
  }
}

/** Per-run state: the env git runs with, bytes counted, phases timed. */
export class Run {
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

async function packSizes(dir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".pack"))) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st) sizes.set(name, st.size);
  }
  return sizes;
}
