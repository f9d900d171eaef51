/**
 * @buildpod/artifact-store: where artifacts go and come from. Two stores behind one interface:
 * `buildkite` (the agent API's artifact protocol over undici) and `dir` (a plain directory).
 * Libraries never print: failures come back as `StoreError`s or per-file `UploadResult`s.
 */

export { BYTES_PER_COLLECTION, noteBuffers } from "./buffers.ts";
export {
  BuildkiteStore,
  type BuildkiteStoreOptions,
  DEFAULT_ENDPOINT,
  escapeId,
  joinUrl,
  SINGLE_UPLOAD_LIMIT,
  splitRanges,
} from "./buildkite.ts";
export { contentTypeFor, DEFAULT_CONTENT_TYPE } from "./content-type.ts";
export {
  type Digest,
  digestBytes,
  digestHandle,
  digestStream,
  KEEP_CONTENT_LIMIT,
  READ_CHUNK,
  readRange,
  STREAM_CHUNK,
} from "./digest.ts";
export { DirStore } from "./dir.ts";
export { isRetryable, StoreError } from "./errors.ts";
export { effectiveStore, type StoreConfig, storeFromConfig } from "./from-config.ts";
export { redact, serverMessage } from "./http.ts";
export { mapLimit } from "./limit.ts";
export { storeOptions } from "./options.ts";
export { defaultRetry, type OnRetry, type RetryPolicy, withRetry } from "./retry.ts";
export {
  openStore,
  parseStoreSpec,
  resolveToken,
  type StoreSpec,
  type TokenSources,
} from "./select.ts";
export type {
  ArtifactStore,
  RemoteArtifact,
  SearchQuery,
  UploadResult,
  UploadSource,
} from "./types.ts";
