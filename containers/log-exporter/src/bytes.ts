// A growable byte buffer that request bodies are assembled in.

/** A byte buffer that grows by doubling; `bytes()` returns a view of what was written. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Appends raw bytes. */
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Appends a string that is known to be ASCII without anything to escape (numbers, ids). */
  ascii(s: string): void {
    this.reserve(s.length);
    this.pos += this.buf.write(s, this.pos, "latin1");
  }

  /** Appends a non-negative integer in decimal. */
  uint(n: number): void {
    this.ascii(String(n));
  }

  /** Appends a string as UTF-8. */
  text(s: string): void {
    this.reserve(s.length * 3);
    this.pos += this.buf.write(s, this.pos, "utf8");
  }

  /** The bytes written so far (a view: copy it before reusing the writer). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Forgets what was written, keeping the memory. */
  reset(): void {
    this.pos = 0;
  }
}

/** `"<s escaped>"` as bytes, for precomputed static parts of documents. */
export function jsonQuoted(s: string): Buffer {
  return Buffer.from(JSON.stringify(s), "utf8");
}
