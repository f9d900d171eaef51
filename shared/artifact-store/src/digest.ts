import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";

/** Size, SHA-1 and SHA-256 of some bytes, the sums as lowercase hex (reference §1). */
export interface Digest {
  size: number;
  sha1: string;
  sha256: string;
}

/** Large reads: fewer syscalls and hash calls per byte, while memory stays at one chunk. */
export const READ_CHUNK = 1024 * 1024;

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

/**
 * Hashes an open file from its start through positional reads into one reused buffer, sized
 * to the expected size (`sizeHint`, from fstat) so that small files cost one small read. A
 * short read is taken as the end of the file: callers hash files that are complete. Aborting
 * `signal` stops between chunks (a drain deadline must not wait for a 5 GiB file's sums).
 */
export async function digestHandle(
  handle: FileHandle,
  sizeHint = READ_CHUNK,
  signal?: AbortSignal,
): Promise<Digest> {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(sizeHint + 1, 16 * 1024)));
  let size = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    sha1.update(chunk);
    sha256.update(chunk);
    size += bytesRead;
    if (bytesRead < buffer.length) break;
  }
  return { size, sha1: sha1.digest("hex"), sha256: sha256.digest("hex") };
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
      const length = Math.min(READ_CHUNK, end - position);
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
      yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: READ_CHUNK });
}
