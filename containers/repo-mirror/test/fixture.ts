import { join } from "node:path";
import { type CacheLayout, cacheLayout } from "../src/cache.ts";
import { prepareCredentials } from "../src/credentials.ts";
import {
  type CheckoutEvent,
  type CheckoutOptions,
  type CheckoutResult,
  checkoutRepository,
} from "../src/materialize.ts";
import { type RepoSyncResult, type SyncOptions, syncMirrors } from "../src/mirror-sync.ts";
import { parseRepoUrl } from "../src/url.ts";

/** Runs sync over `urls` with test-friendly defaults. */
export async function sync(
  cache: string,
  urls: string[],
  extra: Partial<SyncOptions> = {},
): Promise<RepoSyncResult[]> {
  return syncMirrors({
    layout: cacheLayout(cache),
    urls: urls.map((u) => parseRepoUrl(u)),
    credentialFiles: {},
    lockTimeoutMs: 60_000,
    lockStaleMs: 60_000,
    gc: "auto",
    gcIntervalMs: 24 * 3600_000,
    gcPruneExpire: "2.weeks.ago",
    retiredGraceMs: 3600_000,
    parallel: 2,
    ...extra,
  });
}

export interface CheckoutRun {
  result: CheckoutResult;
  events: CheckoutEvent[];
}

/** Runs a checkout with test-friendly defaults; `events` collects what it reported. */
export async function checkout(
  url: string,
  dest: string,
  extra: Partial<Omit<CheckoutOptions, "url" | "layout">> & {
    cache?: string;
    layout?: CacheLayout;
  } = {},
): Promise<CheckoutRun> {
  const events: CheckoutEvent[] = [];
  const repo = parseRepoUrl(url);
  const { cache, ...rest } = extra;
  const credentials = extra.credentials ?? (await prepareCredentials({}, repo));
  const result = await checkoutRepository({
    url: repo,
    target: { commit: "HEAD", ref: "main" },
    layout: cache ? cacheLayout(cache) : undefined,
    dest,
    mode: "dissociate",
    submodules: false,
    wipe: false,
    strictOrigin: false,
    checkoutWorkers: 2,
    credentials,
    recordFile: join(dest, "..", `${dest.split("/").pop()}.checkout.json`),
    onEvent: (e) => events.push(e),
    ...rest,
  });
  return { result, events };
}
