// The `file` and `stdout` sinks: one JSON document per line, the same fields as elasticsearch.
// The embedded default for local runs (no sinks file): records go to stdout.
import { once } from "node:events";
import { createWriteStream, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Writable } from "node:stream";
import { ByteWriter } from "../bytes.ts";
import { DocumentEncoder } from "../document.ts";
import { isBlock, type RecordMeta } from "../record.ts";
import type { RecordBatch, SendResult, Sink } from "./sink.ts";

/** Options of the `file` sink. */
export interface FileSinkOptions {
  /** The file records are appended to; its directory is created. */
  path: string;
}

/** Writes JSON lines to a stream; a batch is delivered once the stream has taken it. */
export class JsonLinesSink implements Sink {
  readonly kind: string;
  readonly #out: Writable;
  readonly #owned: boolean;
  readonly #encoder: DocumentEncoder;
  readonly #writers: ByteWriter[] = [];

  constructor(kind: "file" | "stdout", out: Writable, owned: boolean, meta: RecordMeta) {
    this.kind = kind;
    this.#out = out;
    this.#owned = owned;
    this.#encoder = new DocumentEncoder(meta, { after: "\n" });
  }

  async send(batch: RecordBatch, signal: AbortSignal): Promise<SendResult> {
    signal.throwIfAborted();
    const w = this.#writers.pop() ?? new ByteWriter(256 * 1024);
    w.reset();
    for (const part of batch.parts) {
      if (isBlock(part)) {
        for (let i = 0; i < part.count; i++) this.#encoder.writeLine(w, part, i);
        continue;
      }
      let text = "";
      for (const record of part) {
        text += `${this.#encoder.text(record)}\n`;
        if (text.length > 256 * 1024) {
          w.text(text);
          text = "";
        }
      }
      w.text(text);
    }
    // Wait for the write callback: that is when the bytes left our memory.
    await new Promise<void>((resolve, reject) => {
      this.#out.write(w.bytes(), (err) => (err ? reject(err) : resolve()));
    });
    // The stream is done with the bytes once the write callback ran: reuse the buffer.
    this.#writers.push(w);
    return { delivered: batch.count, rejected: [] };
  }

  async close(): Promise<void> {
    if (!this.#owned) return;
    this.#out.end();
    await once(this.#out, "finish");
  }
}

/** A `file` sink appending to `options.path`. */
export function fileSink(options: FileSinkOptions, meta: RecordMeta): JsonLinesSink {
  mkdirSync(dirname(options.path), { recursive: true });
  return new JsonLinesSink("file", createWriteStream(options.path, { flags: "a" }), true, meta);
}

/** A `stdout` sink (the process's own output, or another stream for tests). */
export function stdoutSink(meta: RecordMeta, out: Writable = process.stdout): JsonLinesSink {
  return new JsonLinesSink("stdout", out, false, meta);
}
