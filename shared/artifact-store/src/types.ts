import type { Readable } from "node:stream";

/**
 * A local file ready to go up: its artifact path, its digests, and a way to read it again for
 * each attempt. `read(start, end)` returns the bytes [start, end) of the file as hashed.
 */
export interface UploadSource {
  /** The artifact's path: relative, `/` separators. */
  path: string;
  /** Where the file is, for the API's `absolute_path`. */
  absolutePath: string;
  size: number;
  sha1: string;
  sha256: string;
  contentType: string;
  read(start: number, end: number): Readable;
  /**
   * The whole file as hashed, when it is small enough to have been kept from the hashing
   * pass; stores then send it from memory and never call `read`.
   */
  content?: Buffer;
}

/** What became of one file of a batch. */
export type UploadResult =
  | { path: string; ok: true; artifactId: string; bytes: number }
  | {
      path: string;
      ok: false;
      artifactId?: string;
      error: Error;
      /** True when a later attempt may succeed (API or storage down); false when refused. */
      retryable: boolean;
    };

/** A search as the agent sends it (reference §2). */
export interface SearchQuery {
  /** A glob over artifact paths; empty means every artifact. */
  query: string;
  /** Step key, label or job ID. */
  scope?: string;
  buildId: string;
  includeRetriedJobs?: boolean;
}

/** An artifact as the search returns it (reference §2). */
export interface RemoteArtifact {
  id: string;
  path: string;
  fileSize: number;
  sha1sum: string;
  sha256sum: string;
  jobId: string;
  createdAt: string;
  url: string;
  contentType: string;
}

/** One stored-artifact backend. Every method may throw a `StoreError`. */
export interface ArtifactStore {
  /** "buildkite" or "dir:/path", for logs and summaries. */
  readonly name: string;
  /**
   * Uploads one batch: creates the artifacts, transfers each file, reports each state. Never
   * throws for one file's failure: each file gets its own `UploadResult`, matched by `path`
   * (paths within one batch are unique).
   */
  uploadBatch(files: UploadSource[], signal?: AbortSignal): Promise<UploadResult[]>;
  /** Finished artifacts matching the query, oldest first. */
  search(query: SearchQuery, signal?: AbortSignal): Promise<RemoteArtifact[]>;
  /** The artifact's bytes (redirects followed). The caller must consume or destroy the stream. */
  open(artifact: RemoteArtifact, signal?: AbortSignal): Promise<Readable>;
  /** Releases connections. */
  close(): Promise<void>;
}
