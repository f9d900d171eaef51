import type { WarningHandler } from "./types.ts";

/** Bytes at the head of a file hashed into its fingerprint once the file is that long. */
export const FINGERPRINT_BYTES = 1024;

/**
 * Leading-bytes fingerprint: the hash of the first `bytes` bytes of the file. `bytes` is below
 * `FINGERPRINT_BYTES` while the file is shorter; it is extended as the file grows.
 */
export interface Fingerprint {
  bytes: number;
  /** sha256 of those bytes, hex, first 32 characters. */
  hash: string;
}

/** Where reading of one file got to, as far as the consumer acknowledged delivery. */
export interface Checkpoint {
  /** Path relative to the root when the checkpoint was taken. */
  path: string;
  dev: string;
  ino: string;
  fingerprint: Fingerprint;
  /** Offset after the last acknowledged line: reading resumes here. */
  offset: number;
}

/**
 * A JSON file of checkpoints, one per file identity (dev:ino), written atomically: a temp file
 * beside it, fsync, rename, fsync of the directory. A torn or corrupt file (bad JSON, wrong
 * shape) is moved aside to `<file>.corrupt` with a "checkpoint-corrupt" warning and tailing
 * starts afresh, so a bad file never causes a crash loop.
 */
export class CheckpointStore {
  /** The checkpoint file's path. */
  readonly file: string;

  constructor(file: string, onWarning?: WarningHandler) {
    this.file = file;
    void onWarning;
  }

  /** Reads the file (a missing file is an empty store). Never throws for bad content. */
  async load(): Promise<Map<string, Checkpoint>> {
    throw new Error("volume-watch: CheckpointStore is not implemented yet");
  }

  /**
   * Writes these checkpoints atomically, replacing the file. A failure is reported as a
   * "checkpoint-write-failed" warning and returns false; the old file stays intact.
   */
  async save(checkpoints: Iterable<Checkpoint>): Promise<boolean> {
    void checkpoints;
    return false;
  }
}

/**
 * Computes the fingerprint of a file's leading bytes (up to `FINGERPRINT_BYTES`).
 * @param absolutePath the file, or an open handle's path
 */
export async function fingerprintFile(absolutePath: string): Promise<Fingerprint> {
  throw new Error(`volume-watch: fingerprintFile is not implemented yet (${absolutePath})`);
}
