/**
 * Scrubbing secret values out of a child's output stream. The runtime logger scrubs what we log;
 * this covers what the supervised agent prints, which we pass through byte for byte otherwise.
 *
 * A secret can arrive split across two chunks, so a chunk's tail that could be the start of a
 * secret is held back until the next chunk (or the end) shows whether it is one. Nothing is
 * held longer than that: a held tail is at most the longest secret minus one byte.
 */
import { Transform, type TransformCallback } from "node:stream";

export const REDACTED = "[REDACTED]";

export class SecretScrubber extends Transform {
  readonly #secrets: Buffer[];
  readonly #redacted = Buffer.from(REDACTED);
  #held: Buffer = Buffer.alloc(0);

  /** `secrets`: values to replace; empty strings are ignored. */
  constructor(secrets: readonly string[]) {
    super();
    this.#secrets = secrets
      .filter((s) => s.length > 0)
      .map((s) => Buffer.from(s))
      .sort((a, b) => b.length - a.length);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const text = this.#replace(Buffer.concat([this.#held, chunk]));
    const keep = this.#partialSecretAtEnd(text);
    this.#held = Buffer.from(text.subarray(text.length - keep));
    if (text.length > keep) this.push(text.subarray(0, text.length - keep));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#held.length > 0) this.push(this.#held);
    done();
  }

  /** Replaces every whole occurrence of every secret (longest first). */
  #replace(buf: Buffer): Buffer {
    for (const secret of this.#secrets) {
      let at = buf.indexOf(secret);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(buf.subarray(from, at), this.#redacted);
        from = at + secret.length;
        at = buf.indexOf(secret, from);
      }
      parts.push(buf.subarray(from));
      buf = Buffer.concat(parts);
    }
    return buf;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some secret. */
  #partialSecretAtEnd(buf: Buffer): number {
    let longest = 0;
    for (const secret of this.#secrets) {
      for (let n = Math.min(secret.length - 1, buf.length); n > longest; n--) {
        if (buf.subarray(buf.length - n).equals(secret.subarray(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
