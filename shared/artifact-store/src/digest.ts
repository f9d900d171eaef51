import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { noteBuffers } from "./buffers.ts";

/** Size, SHA-1 and SHA-256 of some bytes, the sums as lowercase hex (reference §1). */
export interface Digest {
  size: number;
  sha1: string;
  sha256: string;
  /** The bytes hashed, when `digestHandle` was asked to keep a file this small. */
  content?: Buffer;
}

/** Large reads: fewer syscalls and hash calls per byte, while memory stays at one chunk. */
export const READ_CHUNK = 1024 * 1024;

/**
 * Chunks of the streams `readRange` returns. Each is a new buffer that lives until the socket
 * sent it; smaller than `READ_CHUNK` so that it dies young, before the collection that
 * `noteBuffers` starts would promote it (and only a full collection could then free it).
 */
export const STREAM_CHUNK = 256 * 1024;

/**
 * Files up to this size keep the bytes their hashing read (`Digest.content`), so that the
 * upload sends them from memory instead of reading the file a second time through a stream:
 * for thousands of small files that second pass costs more than the transfer. Bounded: a
 * batch of 30 in each of 4 batches in flight holds at most 7.5 MiB.
 */
export const KEEP_CONTENT_LIMIT = 64 * 1024;

/** Hashes a stream with both algorithms in one pass. */
export async function digestStream(stream: Readable): Promise<Digest> {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    sha1.update(chunk);
    sha256.update(chunk);
    size += chunk.length;
  }
  return { size, sha1: sha1.digest("hex"), sha256: sha256.digest("hex") };
}

/** Sums of bytes already in memory (a small file read whole); `content` is those bytes. */
export function digestBytes(bytes: Buffer): Digest {
  const sha1 = createHash("sha1").update(bytes).digest("hex");
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { size: bytes.length, sha1, sha256, content: bytes };
}

/**
 * Hashes an open file from its start through positional reads into one reused buffer, sized
 * to the expected size (`sizeHint`, from fstat) so that small files cost one small read. A
 * short read is taken as the end of the file: callers hash files that are complete. Aborting
 * `signal` stops between chunks (a drain deadline must not wait for a 5 GiB file's sums).
 * With `keepContent`, a file of at most `KEEP_CONTENT_LIMIT` bytes read in one go comes back
 * in `content` as well.
 */
export async function digestHandle(
  handle: FileHandle,
  sizeHint = READ_CHUNK,
  signal?: AbortSignal,
  keepContent = false,
): Promise<Digest> {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  // One byte more than expected, so that a file read whole ends with a short read.
  const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(sizeHint + 1, 16 * 1024)));
  let size = 0;
  let reads = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
    reads++;
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    sha1.update(chunk);
    sha256.update(chunk);
    size += bytesRead;
    if (bytesRead < buffer.length) break;
  }
  noteBuffers(buffer.length);
  const digest: Digest = { size, sha1: sha1.digest("hex"), sha256: sha256.digest("hex") };
  if (keepContent && reads === 1 && size <= KEEP_CONTENT_LIMIT) {
    digest.content = buffer.subarray(0, size);
  }
  return digest;
}

/**
 * A stream of bytes [start, end) of an open file through positional reads, leaving the handle
 * open, so one handle can be hashed and then uploaded (in parts, concurrently) without opening
 * the path again. Ends early at end of file when `end` is infinite; a file that shrank below
 * `end` fails the stream, since what was hashed can no longer be sent.
 */
export function readRange(handle: FileHandle, start: number, end: number): Readable {
  async function* chunks() {
    let position = start;
    while (position < end) {
      const length = Math.min(STREAM_CHUNK, end - position);
      const buffer = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      if (bytesRead === 0) {
        if (Number.isFinite(end)) {
          throw new Error(
            `could not read bytes ${position}-${end}: the file shrank to ${position}`,
          );
        }
        return;
      }
      position += bytesRead;
      noteBuffers(length);
      yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: STREAM_CHUNK });
}
