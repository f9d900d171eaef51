import { mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import {
  type CacheLayout,
  linkTarget,
  lockFile,
  markFile,
  mirrorLink,
  removeMark,
} from "./cache.ts";
import { type CredentialFiles, configEnv, prepareCredentials } from "./credentials.ts";
import { classifyFailure, GitError, type GitProgress, git } from "./git.ts";
import { acquireLock } from "./lock.ts";
import type { RepoUrl } from "./url.ts";

export type GcPolicy = "auto" | "always" | "never";

export interface SyncOptions {
  layout: CacheLayout;
  urls: RepoUrl[];
  credentialFiles: CredentialFiles;
  lockTimeoutMs: number;
  lockStaleMs: number;
  gc: GcPolicy;
  /** With gc "auto": run gc when the last one is older than this. */
  gcIntervalMs: number;
  /** Unreachable objects younger than this survive gc (git's --prune=<date>), e.g. "2.weeks.ago". */
  gcPruneExpire: string;
  /** Replaced mirror generations are deleted once retired for this long. */
  retiredGraceMs: number;
  /** Mirrors synced at once. */
  parallel: number;
  signal?: AbortSignal;
  onEvent?: (e: SyncEvent) => void;
}

export type SyncAction = "created" | "updated" | "rebuilt" | "failed";

export interface RepoSyncResult {
  url: string;
  key: string;
  action: SyncAction;
  gc: boolean;
  durationMs: number;
  receivedBytes: number;
  error?: string;
}

export type SyncEvent =
  | { type: "progress"; url: string; phase: string; progress: GitProgress }
  | { type: "repo"; result: RepoSyncResult }
  | { type: "warning"; url: string; message: string; err?: Error };

/** Mirror metadata kept inside each mirror (`buildpod-mirror.json`); checkouts never copy it. */
interface MirrorMeta {
  url: string;
  identity: string;
  createdAt: string;
  lastFetchAt?: string;
  lastGcAt?: string;
}

const META = "buildpod-mirror.json";
const RETIRED = "buildpod-retired";

/** Brings every mirror up to date; one repository's failure does not stop the others. */
export async function syncMirrors(o: SyncOptions): Promise<RepoSyncResult[]> {
  const l = o.layout;
  for (const dir of [l.mirrors, l.store, l.locks, l.tmp, l.marks])
    await mkdir(dir, { recursive: true });
  const results: RepoSyncResult[] = [];
  const queue = [...o.urls];
  const worker = async () => {
    for (let url = queue.shift(); url; url = queue.shift()) {
      const r = await syncOne(o, url);
      results.push(r);
      o.onEvent?.({ type: "repo", result: r });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, worker));
  return results;
}

async function syncOne(o: SyncOptions, url: RepoUrl): Promise<RepoSyncResult> {
  const start = performance.now();
  const result: RepoSyncResult = {
    url: url.fetchUrl,
    key: url.key,
    action: "failed",
    gc: false,
    durationMs: 0,
    receivedBytes: 0,
  };
  const creds = await prepareCredentials(o.credentialFiles, url);
  const env = { ...creds.env, ...configEnv(creds.config) };
  const gitOpts = (cwd?: string) => ({
    cwd,
    env,
    signal: o.signal,
    secrets: creds.secrets,
    onProgress: (progress: GitProgress) =>
      o.onEvent?.({ type: "progress", url: url.fetchUrl, phase: "fetch", progress }),
  });
  try {
    const lock = await acquireLock(lockFile(o.layout, url.key), {
      timeoutMs: o.lockTimeoutMs,
      staleMs: o.lockStaleMs,
      signal: o.signal,
    });
    try {
      await retireLeftovers(o, url.key);
      const current = await linkTarget(o.layout, url.key);
      const markedAt = (await stat(markFile(o.layout, url.key)).catch(() => undefined))?.mtimeMs;
      const healthy = current !== undefined && (await readMeta(current)) !== undefined;

      if (!healthy || markedAt !== undefined) {
        result.receivedBytes = await createMirror(o, url, gitOpts);
        result.action = current ? "rebuilt" : "created";
      } else {
        try {
          const r = await git(["fetch", "--prune", "--progress", "--", "origin"], gitOpts(current));
          result.receivedBytes = r.receivedBytes;
          result.action = "updated";
          await updateMeta(current, { lastFetchAt: new Date().toISOString() });
          result.gc = await maybeGc(o, current, gitOpts(current));
        } catch (e) {
          if (!(e instanceof GitError && classifyFailure(e.stderr) === "corrupt")) throw e;
          o.onEvent?.({
            type: "warning",
            url: url.fetchUrl,
            message: `mirror is corrupt, rebuilding: ${e.message}`,
            err: e,
          });
          result.receivedBytes = await createMirror(o, url, gitOpts);
          result.action = "rebuilt";
        }
      }
      // A checkout may have marked the mirror while it was being rebuilt; keep that mark.
      const markNow = (await stat(markFile(o.layout, url.key)).catch(() => undefined))?.mtimeMs;
      if (markNow !== undefined && markNow === markedAt && result.action !== "updated")
        await removeMark(o.layout, url.key);
    } finally {
      await lock.release();
    }
  } catch (e) {
    result.action = "failed";
    result.error = (e as Error).message;
  } finally {
    await creds.dispose();
  }
  result.durationMs = Math.round(performance.now() - start);
  return result;
}

/**
 * Clones into tmp/, moves the finished mirror into store/, then swaps the link with one
 * rename(2): a reader sees the old mirror or the new one, never half of one. The old generation
 * is only marked retired; it is deleted a grace period later, after readers are done with it.
 */
async function createMirror(
  o: SyncOptions,
  url: RepoUrl,
  gitOpts: (cwd?: string) => Parameters<typeof git>[1],
): Promise<number> {
  const stamp = `${Date.now()}-${process.pid}`;
  const tmp = join(o.layout.tmp, `${url.key}.${stamp}.git`);
  const r = await git(["clone", "--mirror", "--progress", "--", url.fetchUrl, tmp], gitOpts());
  // Sync alone decides when to gc: a fetch's automatic gc would repack at random times.
  await git(["config", "gc.auto", "0"], gitOpts(tmp));
  const now = new Date().toISOString();
  await writeMeta(tmp, {
    url: url.fetchUrl,
    identity: url.identity,
    createdAt: now,
    lastFetchAt: now,
    lastGcAt: now,
  });

  const final = join(o.layout.store, `${url.key}.${stamp}.git`);
  await rename(tmp, final);
  const old = await linkTarget(o.layout, url.key);
  const link = mirrorLink(o.layout, url.key);
  const tmpLink = join(o.layout.mirrors, `.${url.key}.${stamp}.link`);
  await symlink(relative(o.layout.mirrors, final), tmpLink);
  await rename(tmpLink, link);
  if (old) await writeFile(join(old, RETIRED), now).catch(() => {});
  return r.receivedBytes;
}

/**
 * gc that leaves readers alone: unreachable objects younger than gcPruneExpire are kept, so a
 * force push does not pull objects from under `reference` workspaces; old packs are removed
 * only after the new pack is complete, and a copying checkout notices and copies again.
 */
async function maybeGc(
  o: SyncOptions,
  mirror: string,
  opts: Parameters<typeof git>[1],
): Promise<boolean> {
  if (o.gc === "never") return false;
  const meta = await readMeta(mirror);
  const last = meta?.lastGcAt ? Date.parse(meta.lastGcAt) : 0;
  if (o.gc === "auto" && Date.now() - last < o.gcIntervalMs) return false;
  await git(
    ["-c", "gc.writeCommitGraph=true", "gc", "--quiet", `--prune=${o.gcPruneExpire}`],
    opts,
  );
  await updateMeta(mirror, { lastGcAt: new Date().toISOString() });
  return true;
}

/** Removes this key's half-built clones and the generations retired longer than the grace. */
async function retireLeftovers(o: SyncOptions, key: string): Promise<void> {
  const prefix = `${key}.`;
  for (const name of await readdir(o.layout.tmp)) {
    if (name.startsWith(prefix))
      await rm(join(o.layout.tmp, name), { recursive: true, force: true });
  }
  const current = await linkTarget(o.layout, key);
  for (const name of await readdir(o.layout.store)) {
    const dir = join(o.layout.store, name);
    if (!name.startsWith(prefix) || dir === current) continue;
    const retired = await stat(join(dir, RETIRED)).catch(() => stat(dir));
    if (Date.now() - retired.mtimeMs > o.retiredGraceMs)
      await rm(dir, { recursive: true, force: true });
  }
}

async function readMeta(mirror: string): Promise<MirrorMeta | undefined> {
  try {
    await stat(join(mirror, "objects"));
    return JSON.parse(await readFile(join(mirror, META), "utf8")) as MirrorMeta;
  } catch {
    return undefined;
  }
}

async function writeMeta(mirror: string, meta: MirrorMeta): Promise<void> {
  const tmp = join(mirror, `${META}.tmp`);
  await writeFile(tmp, `${JSON.stringify(meta, null, 2)}\n`);
  await rename(tmp, join(mirror, META));
}

async function updateMeta(mirror: string, patch: Partial<MirrorMeta>): Promise<void> {
  const meta = await readMeta(mirror);
  if (meta) await writeMeta(mirror, { ...meta, ...patch });
}
