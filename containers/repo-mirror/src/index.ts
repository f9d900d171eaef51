/** @buildpod/repo-mirror's core, for tests and benchmarks; the container runs src/main.ts. */
export { type CacheLayout, cacheLayout, lookupMirror } from "./cache.ts";
export { type CredentialFiles, prepareCredentials } from "./credentials.ts";
export {
  CheckoutError,
  type CheckoutOptions,
  type CheckoutResult,
  checkoutRepository,
} from "./materialize.ts";
export { type RepoSyncResult, type SyncOptions, syncMirrors } from "./mirror-sync.ts";
export { checkCommit, checkRef, refFromBuildkiteEnv } from "./refs.ts";
export { parseRepoUrl, type RepoUrl, UsageError } from "./url.ts";
