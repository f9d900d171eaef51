import { open, readFile, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

export interface LockOptions {
  /** Give up waiting after this long. */
  timeoutMs: number;
  /** A lock whose heartbeat (mtime) is older than this is stale and may be taken over. */
  staleMs: number;
  /** Poll interval while waiting. */
  pollMs?: number;
  signal?: AbortSignal;
}

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  token: string;
  at: string;
}

/** The lock stayed held by a live owner for the whole timeout. */
export class LockTimeoutError extends Error {
  readonly path: string;
  constructor(path: string, waitedMs: number, owner: string) {
    super(
      `could not lock ${path}: held by ${owner} for longer than ${Math.round(waitedMs / 1000)}s; ` +
        "another sync is running, or remove the file if its owner is gone",
    );
    this.name = "LockTimeoutError";
    this.path = path;
  }
}

/**
 * Takes an exclusive lock file (created with O_EXCL). While held, its mtime is refreshed every
 * staleMs/4, so a lock whose mtime is older than staleMs belongs to a crashed or frozen owner;
 * so does one from this host whose pid no longer exists. Taking over a stale lock is itself
 * guarded by a short-lived `<lock>.takeover` file, so two waiters cannot both remove it and one
 * of them delete the other's fresh lock.
 */
export async function acquireLock(path: string, opts: LockOptions): Promise<HeldLock> {
  const start = Date.now();
  const token = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    token,
    at: new Date().toISOString(),
  };
  let lastOwner = "unknown";
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await tryCreate(path, JSON.stringify(owner))) return hold(path, token, opts.staleMs);

    const current = await inspect(path, opts.staleMs);
    if (current.stale) await takeOver(path, current.token, opts.staleMs);
    lastOwner = current.describe;
    if (Date.now() - start >= opts.timeoutMs)
      throw new LockTimeoutError(path, opts.timeoutMs, lastOwner);
    await sleep(opts.pollMs ?? 250, undefined, { signal: opts.signal });
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  try {
    const fh = await open(path, "wx");
    await fh.writeFile(content);
    await fh.close();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

async function inspect(
  path: string,
  staleMs: number,
): Promise<{ stale: boolean; token?: string; describe: string }> {
  try {
    const [text, st] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    let o: Partial<LockOwner> = {};
    try {
      o = JSON.parse(text) as LockOwner;
    } catch {
      // A lock file cut short by a crash between create and write: judged by mtime alone.
    }
    const age = Date.now() - st.mtimeMs;
    const dead = o.host === hostname() && typeof o.pid === "number" && !pidAlive(o.pid);
    const describe = `pid ${o.pid ?? "?"} on ${o.host ?? "?"} (heartbeat ${Math.round(age / 1000)}s ago)`;
    return { stale: dead || age > staleMs, token: o.token, describe };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { stale: false, describe: "nobody" };
    throw e;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function takeOver(
  path: string,
  staleToken: string | undefined,
  staleMs: number,
): Promise<void> {
  const guard = `${path}.takeover`;
  // A takeover guard left by a crash in the few milliseconds it is held.
  const g = await stat(guard).catch(() => undefined);
  if (g && Date.now() - g.mtimeMs > 30_000) await rm(guard, { force: true });
  if (!(await tryCreate(guard, String(process.pid)))) return;
  try {
    const again = await inspect(path, staleMs);
    if (again.stale && again.token === staleToken) await rm(path, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}

function hold(path: string, token: string, staleMs: number): HeldLock {
  const beat = setInterval(
    () => {
      const now = new Date();
      utimes(path, now, now).catch(() => {});
    },
    Math.max(50, Math.floor(staleMs / 4)),
  );
  beat.unref();
  return {
    path,
    release: async () => {
      clearInterval(beat);
      // Only remove the file if it is still ours (a takeover after a long freeze replaces it).
      const text = await readFile(path, "utf8").catch(() => "");
      if (text.includes(token)) await rm(path, { force: true });
    },
  };
}
