import path from "node:path";
import { DEFAULT_ENDPOINT } from "./buildkite.ts";
import { StoreError } from "./errors.ts";
import type { RetryPolicy } from "./retry.ts";
import { openStore, parseStoreSpec, resolveToken, type StoreSpec } from "./select.ts";
import type { ArtifactStore } from "./types.ts";

/** The store-related option values both containers share. */
export interface StoreConfig {
  store?: string;
  endpoint?: string;
  token?: string;
  lifecycleDir: string;
  jobId?: string;
  timeoutMs: number;
  concurrency?: number;
  multipart?: boolean;
  /** How to turn multipart uploads back on, for a file too big without them. */
  noMultipartHint?: string;
  retry?: RetryPolicy;
  userAgent: string;
  onRetry?: (info: { attempt: number; delayMs: number; err: unknown }) => void;
}

/**
 * Picks and opens the store from the containers' options. Without `--store`, buildkite is used
 * when a token or an endpoint is there (a Buildkite job), else the embedded default, a dir store
 * at `<lifecycleDir>/artifact-store`. A buildkite store without a token throws a StoreError
 * (code ARTIFACT_STORE_NO_TOKEN) before any work starts.
 */
export async function storeFromConfig(
  c: StoreConfig,
): Promise<{ store: ArtifactStore; spec: StoreSpec; endpoint?: string }> {
  const token = await resolveToken({ token: c.token, lifecycleDir: c.lifecycleDir });
  const spec = chooseSpec(c, token);
  if (spec.kind === "buildkite" && !token) {
    throw new StoreError(
      "ARTIFACT_STORE_NO_TOKEN",
      `could not use the buildkite store: no job token; set BUILDKITE_AGENT_ACCESS_TOKEN, give --token-file, or let the agent-injector write ${path.join(c.lifecycleDir, "env", "token")}`,
    );
  }
  const endpoint = spec.kind === "buildkite" ? c.endpoint || DEFAULT_ENDPOINT : undefined;
  const store = openStore(spec, {
    token,
    endpoint,
    jobId: c.jobId,
    timeoutMs: c.timeoutMs,
    concurrency: c.concurrency,
    multipart: c.multipart,
    noMultipartHint: c.noMultipartHint,
    retry: c.retry,
    userAgent: c.userAgent,
    onRetry: c.onRetry,
  });
  return { store, spec, endpoint };
}

/** `--store`, else buildkite with a token or an endpoint, else the embedded dir store. */
function chooseSpec(
  c: Pick<StoreConfig, "store" | "endpoint" | "lifecycleDir">,
  token?: string,
): StoreSpec {
  if (c.store) return parseStoreSpec(c.store);
  if (token || c.endpoint) return { kind: "buildkite" };
  return { kind: "dir", root: path.join(c.lifecycleDir, "artifact-store") };
}

/**
 * The store `storeFromConfig` would open, without opening it: `--store` as given, or the
 * default it falls back to (`buildkite` with its endpoint, `dir:<lifecycle dir>/artifact-store`),
 * for `--print-config`.
 */
export async function effectiveStore(
  c: Pick<StoreConfig, "store" | "endpoint" | "token" | "lifecycleDir">,
): Promise<{ store: string; endpoint?: string }> {
  const token = await resolveToken({ token: c.token, lifecycleDir: c.lifecycleDir });
  const spec = chooseSpec(c, token);
  if (spec.kind === "buildkite")
    return { store: "buildkite", endpoint: c.endpoint || DEFAULT_ENDPOINT };
  return { store: `dir:${spec.root}` };
}
