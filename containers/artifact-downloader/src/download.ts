import { mkdir } from "node:fs/promises";
import {
  type ArtifactStore,
  mapLimit,
  type RemoteArtifact,
  type RetryPolicy,
  StoreError,
  withRetry,
} from "@buildpod/artifact-store";
import { type DirCache, fetchOne } from "./fetch-one.ts";
import { targetPath } from "./target.ts";

export interface DownloadOptions {
  store: ArtifactStore;
  /** Globs searched one by one; their matches are downloaded together. */
  queries: readonly string[];
  buildId: string;
  /** Step key, label or job ID (`--step`). */
  scope?: string;
  includeRetriedJobs?: boolean;
  /** A query matching nothing is a failure rather than a warning. */
  required?: boolean;
  dest: string;
  /** Downloads in flight at once. */
  concurrency: number;
  /** Attempts of one artifact's whole download (the store retries each request as well). */
  retry: RetryPolicy;
  signal?: AbortSignal;
  onEvent?: (event: DownloadEvent) => void;
  /** Called with every chunk's length, for progress lines. */
  onBytes?: (n: number) => void;
}

/** What the run logs; the library itself never prints. */
export type DownloadEvent =
  /** `added`: the matches no earlier query returned. */
  | { type: "searched"; query: string; found: number; added: number }
  | { type: "duplicate"; path: string; kept: string; dropped: string }
  | { type: "refused"; path: string; why: string }
  | { type: "downloaded"; path: string; bytes: number }
  | { type: "failed"; path: string; err: Error };

export interface DownloadReport {
  found: number;
  downloaded: number;
  bytes: number;
  /** Queries that matched nothing. */
  unmatched: string[];
  refused: { path: string; why: string }[];
  failed: { path: string; error: string }[];
  duplicates: number;
}

/**
 * Searches every query, plans where each match lands (refusing paths that would leave the
 * destination, keeping the newest of artifacts sharing a path), then downloads the plan in
 * parallel. Per-artifact failures are collected, never thrown; a failed search throws. When
 * `signal` aborts, the downloads in flight end (their temp files removed) and the report holds
 * what was done until then; artifacts cut short are neither downloaded nor failed.
 */
export async function downloadArtifacts(o: DownloadOptions): Promise<DownloadReport> {
  const report: DownloadReport = {
    found: 0,
    downloaded: 0,
    bytes: 0,
    unmatched: [],
    refused: [],
    failed: [],
    duplicates: 0,
  };
  const matches: RemoteArtifact[] = [];
  const ids = new Set<string>();
  for (const query of o.queries) {
    const found = await o.store.search(
      { query, buildId: o.buildId, scope: o.scope, includeRetriedJobs: o.includeRetriedJobs },
      o.signal,
    );
    const before = ids.size;
    for (const a of found) ids.add(a.id);
    o.onEvent?.({ type: "searched", query, found: found.length, added: ids.size - before });
    if (found.length === 0) report.unmatched.push(query);
    matches.push(...found);
  }
  // An artifact that two queries match is found once, and downloaded once.
  report.found = ids.size;

  const plan = planTargets(o, matches, report);
  if (plan.length > 0) await makeDest(o.dest);
  const dirs: DirCache = new Map();
  await mapLimit(plan, o.concurrency, async ({ artifact, absolute }) => {
    try {
      const bytes = await withRetry(
        () =>
          fetchOne(o.store, artifact, absolute, o.dest, o.onBytes ?? (() => {}), dirs, o.signal),
        o.retry,
        { signal: o.signal, shouldRetry: worthRetrying },
      );
      report.downloaded++;
      report.bytes += bytes;
      o.onEvent?.({ type: "downloaded", path: artifact.path, bytes });
    } catch (err) {
      // A stop signal is not this artifact's failure: the run reports the interruption.
      if (o.signal?.aborted) return;
      const error = err instanceof Error ? err : new Error(String(err));
      report.failed.push({ path: artifact.path, error: error.message });
      o.onEvent?.({ type: "failed", path: artifact.path, err: error });
    }
  });
  return report;
}

/** One target per path: refused paths reported, the newest of duplicates kept. */
function planTargets(o: DownloadOptions, matches: RemoteArtifact[], report: DownloadReport) {
  const byTarget = new Map<string, { artifact: RemoteArtifact; absolute: string }>();
  const seenIds = new Set<string>();
  for (const artifact of matches) {
    if (seenIds.has(artifact.id)) continue; // two queries matching one artifact
    seenIds.add(artifact.id);
    const target = targetPath(o.dest, artifact.path);
    if (!target.ok) {
      report.refused.push({ path: artifact.path, why: target.why });
      o.onEvent?.({ type: "refused", path: artifact.path, why: target.why });
      continue;
    }
    const earlier = byTarget.get(target.absolute);
    if (earlier) {
      report.duplicates++;
      const newer = isNewer(artifact, earlier.artifact) ? artifact : earlier.artifact;
      const older = newer === artifact ? earlier.artifact : artifact;
      o.onEvent?.({ type: "duplicate", path: target.relative, kept: newer.id, dropped: older.id });
      if (newer === earlier.artifact) continue;
    }
    byTarget.set(target.absolute, { artifact, absolute: target.absolute });
  }
  return [...byTarget.values()];
}

/** Creates the destination, or says why it cannot be one (a file, a read-only mount). */
async function makeDest(dest: string): Promise<void> {
  try {
    await mkdir(dest, { recursive: true });
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    const why =
      code === "EEXIST" || code === "ENOTDIR" ? "it is not a directory" : (cause as Error).message;
    throw new StoreError(
      "ARTIFACT_DOWNLOADER_BAD_DEST",
      `could not create the destination ${dest}: ${why}; set --dest to a writable directory`,
      { cause },
    );
  }
}

/**
 * Store errors say whether they are retryable; a local filesystem error (it has a `syscall`)
 * will not go away by itself; anything else is a broken transfer worth another try.
 */
function worthRetrying(err: unknown): boolean {
  if (err instanceof StoreError) return err.retryable;
  if (err instanceof Error && err.name === "AbortError") return false;
  return !(err as { syscall?: string }).syscall;
}

function isNewer(a: RemoteArtifact, b: RemoteArtifact): boolean {
  return Date.parse(a.createdAt) > Date.parse(b.createdAt);
}

/**
 * Thrown by the run when a required query matched nothing. `searched` names where: `build
 * <id>` for the agent API, the store (`dir:PATH`) for a directory, which holds no builds.
 */
export function unmatchedError(queries: string[], searched: string): StoreError {
  const list = queries.map((q) => JSON.stringify(q)).join(", ");
  return new StoreError(
    "ARTIFACT_DOWNLOADER_NO_MATCH",
    `could not find artifacts matching ${list} in ${searched}; check the query and --step, or drop --required`,
  );
}
