// Checkpoints follow what the sink acknowledged, not what was read: Fluent Bit commits offsets
// when lines are handed on and can lose them on a hard kill; committing on acknowledgement (as
// Vector does) means a crash at worst repeats lines, never drops them.

import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { errorCode } from "./safety.ts";
import type { WarningHandler } from "./types.ts";

/** Bytes at the head of a file hashed into its fingerprint once the file is that long. */
export const FINGERPRINT_BYTES = 1024;

const FORMAT_VERSION = 1;

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
  private readonly onWarning?: WarningHandler;
  private failing = false;

  constructor(file: string, onWarning?: WarningHandler) {
    this.file = path.resolve(file);
    this.onWarning = onWarning;
  }

  /**
   * Reads the file (a missing file is an empty store), keyed by `${dev}:${ino}`. Never throws
   * for bad content: a corrupt file is set aside and reported; bad entries are skipped.
   */
  async load(): Promise<Map<string, Checkpoint>> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if (errorCode(err) === "ENOENT") return new Map();
      this.warn(
        "checkpoint-corrupt",
        `could not read checkpoint file ${this.file}: ${String(err)}; starting without checkpoints`,
        err,
      );
      return new Map();
    }
    const entries = parseEntries(text);
    if (entries === undefined) {
      await this.setAside();
      return new Map();
    }
    const result = new Map<string, Checkpoint>();
    for (const entry of entries) {
      if (isCheckpoint(entry)) result.set(`${entry.dev}:${entry.ino}`, entry);
      else
        this.warn(
          "checkpoint-corrupt",
          `skipped a malformed entry in checkpoint file ${this.file}`,
        );
    }
    return result;
  }

  /**
   * Writes these checkpoints atomically, replacing the file (its directory is created if
   * missing). A failure returns false and leaves the old file intact; it is reported as a
   * "checkpoint-write-failed" warning once, not again until a write has succeeded.
   */
  async save(checkpoints: Iterable<Checkpoint>): Promise<boolean> {
    const body = `${JSON.stringify({ version: FORMAT_VERSION, files: [...checkpoints] })}\n`;
    const temp = `${this.file}.tmp-${process.pid}`;
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      const handle = await open(temp, "w", 0o644);
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.file);
      await syncDirectory(path.dirname(this.file));
      this.failing = false;
      return true;
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      if (this.failing) return false;
      this.failing = true;
      this.warn(
        "checkpoint-write-failed",
        `could not write checkpoint file ${this.file}: ${String(err)}; the previous one is kept and the write is retried`,
        err,
      );
      return false;
    }
  }

  // Keeps the bad file for a post-mortem but out of the way of the next start.
  private async setAside(): Promise<void> {
    const aside = `${this.file}.corrupt`;
    try {
      await rename(this.file, aside);
    } catch (err) {
      void err; // nothing more to do: the next save replaces it anyway
    }
    this.warn(
      "checkpoint-corrupt",
      `could not parse checkpoint file ${this.file}: it is torn or corrupt; moved it to ${aside} and started without checkpoints (files are read again from their start)`,
    );
  }

  private warn(
    code: "checkpoint-corrupt" | "checkpoint-write-failed",
    message: string,
    cause?: unknown,
  ): void {
    this.onWarning?.({ code, message, path: this.file, cause });
  }
}

/** The hash of `bytes` as stored in a `Fingerprint`. */
export function fingerprintOf(bytes: Buffer): Fingerprint {
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 32);
  return { bytes: bytes.length, hash };
}

/**
 * Computes the fingerprint of a file's leading bytes: `length` of them (default up to
 * `FINGERPRINT_BYTES`). With `length` set and the file shorter, the result has fewer bytes.
 */
export async function fingerprintFile(
  absolutePath: string,
  length = FINGERPRINT_BYTES,
): Promise<Fingerprint> {
  const handle = await open(absolutePath, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, 0);
    return fingerprintOf(buf.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

function parseEntries(text: string): unknown[] | undefined {
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== "object" || doc === null || !("files" in doc)) return undefined;
    return Array.isArray(doc.files) ? doc.files : undefined;
  } catch {
    return undefined;
  }
}

function isCheckpoint(value: unknown): value is Checkpoint {
  if (typeof value !== "object" || value === null) return false;
  const c = value as Record<string, unknown>;
  const fp = c.fingerprint as Record<string, unknown> | undefined;
  return (
    typeof c.path === "string" &&
    typeof c.dev === "string" &&
    typeof c.ino === "string" &&
    Number.isSafeInteger(c.offset) &&
    (c.offset as number) >= 0 &&
    typeof fp === "object" &&
    fp !== null &&
    Number.isSafeInteger(fp.bytes) &&
    typeof fp.hash === "string"
  );
}

// After a rename, the directory entry itself must reach the disk for the new file to survive
// a power loss. Some filesystems refuse fsync on directories; that is not worth a warning.
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort, see above
  }
}
