// The elasticsearch sink: `_bulk` requests with `create` and a deterministic `_id`.
//
// The bulk body is built by hand (see ../bytes.ts for why) and sent through the official
// client's transport, which still does connection pooling, auth, TLS and response parsing.
// `client.helpers.bulk` is not used: it serialises every document with JSON.stringify, retries
// only 429 items and drops 5xx items (reference: elasticsearch-js src/helpers.ts).
//
// Per item (BulkResponse items are in request order):
//   2xx, 409  delivered (409 on `create` means the id is already there: an earlier try landed)
//   429, 5xx  retried alone, with backoff, until the drain deadline
//   other     rejected for good (400 mapping errors, 404): dead-lettered, never retried
import { readFileSync } from "node:fs";
import { Client, type ClientOptions, errors, HttpConnection } from "@elastic/elasticsearch";
import { ByteWriter } from "../bytes.ts";
import { DocumentEncoder } from "../document.ts";
import {
  isBlock,
  type LineBlock,
  type LogRecord,
  type Origin,
  type RecordMeta,
  recordCount,
} from "../record.ts";
import { backoffDelay, sleep } from "../retry.ts";
import type { RecordBatch, Rejection, SendResult, Sink, SinkEvents } from "./sink.ts";

/** Options of the elasticsearch sink (from the sinks file). */
export interface ElasticsearchSinkOptions {
  /** One or more node URLs. */
  nodes: string[];
  /** Index or data stream name (data streams accept `create` only, which is all we send). */
  index: string;
  username?: string;
  password?: string;
  apiKey?: string;
  /** PEM file with the CA that signed the nodes' certificates. */
  caFile?: string;
  /** Upper bound of one request body. Elasticsearch refuses bodies over 100mb by default. */
  maxBulkBytes: number;
  /** Timeout of one request in milliseconds. */
  requestTimeoutMs: number;
  /** Backoff bounds between retries. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface BulkItemResult {
  status: number;
  error?: { type?: string; reason?: string };
}

const FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason";
/** Bytes of an item besides its message and the static fields: action, time, path, offset. */
const ITEM_OVERHEAD = 256;

/** Ships records to Elasticsearch with `_bulk`. */
export class ElasticsearchSink implements Sink {
  readonly kind = "elasticsearch";
  readonly #client: Client;
  readonly #options: ElasticsearchSinkOptions;
  readonly #encoder: DocumentEncoder;
  readonly #events: SinkEvents;
  readonly #path: string;
  readonly #prefixes = new WeakMap<Origin, string>();
  readonly #actionPrefixes = new WeakMap<Origin, Buffer>();
  readonly #writers: ByteWriter[] = [];
  /** Requests that found no node since the last one that got an answer. */
  #failures = 0;

  constructor(options: ElasticsearchSinkOptions, meta: RecordMeta, events: SinkEvents = {}) {
    this.#options = options;
    // Each block line: the action, whose end `"}}\n` comes with the document, then a newline.
    this.#encoder = new DocumentEncoder(meta, { before: '"}}\n', after: "\n" });
    this.#events = events;
    this.#path = `/${encodeURIComponent(options.index)}/_bulk`;
    this.#client = new Client(clientOptions(options));
  }

  async send(batch: RecordBatch, signal: AbortSignal): Promise<SendResult> {
    const rejected: Rejection[] = [];
    let delivered = 0;
    // Body buffers are reused: a fresh multi-megabyte Buffer per request is garbage V8 only
    // collects after tens of megabytes of external memory, which shows in the peak RSS.
    // Sized once for the whole body: growing step by step leaves a trail of dead buffers.
    const size = Math.min(this.#estimate(batch), this.#options.maxBulkBytes + 64 * 1024);
    // A new writer gets a quarter more: the next batches may be a little larger.
    const w = this.#writers.pop() ?? new ByteWriter(Math.ceil(size * 1.25));
    w.reserve(size);
    try {
      for (const chunk of this.#chunks(batch, w)) {
        const records = () => batch.records().slice(chunk.from, chunk.to);
        const result = await this.#sendChunk(chunk.to - chunk.from, records, chunk.body, signal);
        delivered += result.delivered;
        rejected.push(...result.rejected);
      }
    } finally {
      w.reset();
      this.#writers.push(w);
    }
    return { delivered, rejected };
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  /**
   * Splits the batch into bodies of at most `maxBulkBytes` (a single larger item goes alone):
   * records `[from, to)` of the batch, and their bulk body.
   */
  *#chunks(
    batch: RecordBatch,
    w: ByteWriter,
  ): Generator<{ from: number; to: number; body: Buffer }> {
    // Each body is a view into `w`: the caller sends it before asking for the next one.
    const max = this.#options.maxBulkBytes;
    let from = 0;
    let index = 0;
    for (const part of batch.parts) {
      const count = recordCount(part);
      for (let i = 0; i < count; i++, index++) {
        const mark = w.pos;
        if (isBlock(part)) this.#writeItem(w, part, i);
        else w.text(this.#item(part[i] as LogRecord));
        if (w.pos <= max || index === from) continue;
        // Over the limit: send what came before this item, then start over with it.
        yield { from, to: index, body: w.buf.subarray(0, mark) };
        w.buf.copyWithin(0, mark, w.pos);
        w.pos -= mark;
        from = index;
      }
    }
    if (w.pos > 0) yield { from, to: index, body: w.bytes() };
  }

  /** About how many bytes the bulk body of `batch` takes (a little more, rarely less). */
  #estimate(batch: RecordBatch): number {
    let bytes = 0;
    for (const part of batch.parts) {
      if (isBlock(part)) bytes += part.data.length * 1.05 + part.count * ITEM_OVERHEAD;
      else for (const r of part) bytes += r.message.length * 1.1 + ITEM_OVERHEAD;
    }
    return Math.ceil(bytes + this.#encoder.tailLength * batch.count);
  }

  /** Line `i` of a block as its action line and document, from the block's bytes. */
  #writeItem(w: ByteWriter, block: LineBlock, i: number): void {
    w.raw(this.#actionPrefix(block.origin));
    w.base36(block.base + (block.starts[i] as number));
    this.#encoder.writeLine(w, block, i);
  }

  /** `{"create":{"_id":"<origin key>-` as bytes. */
  #actionPrefix(origin: Origin): Buffer {
    let prefix = this.#actionPrefixes.get(origin);
    if (prefix === undefined) {
      prefix = Buffer.from(`{"create":{"_id":"${this.#prefix(origin)}`, "latin1");
      this.#actionPrefixes.set(origin, prefix);
    }
    return prefix;
  }

  /** The action line and the document of one record, each ending in a newline. */
  #item(record: LogRecord): string {
    const id = record.id ?? `${this.#prefix(record.origin)}${record.offset.toString(36)}`;
    return `{"create":{"_id":"${id}"}}\n${this.#encoder.text(record)}\n`;
  }

  /** The id prefix of an origin's records: its key and a dash. */
  #prefix(origin: Origin): string {
    let prefix = this.#prefixes.get(origin);
    if (prefix === undefined) {
      prefix = `${origin.key}-`;
      this.#prefixes.set(origin, prefix);
    }
    return prefix;
  }

  /** Sends one body until every item is delivered or rejected. */
  async #sendChunk(
    count: number,
    chunkRecords: () => readonly LogRecord[],
    body: Buffer,
    signal: AbortSignal,
  ): Promise<SendResult> {
    const rejected: Rejection[] = [];
    let delivered = 0;
    // Record objects are only made when something went wrong: to retry or dead-letter items.
    let pending: readonly LogRecord[] | undefined;
    for (let attempt = 1; ; attempt++) {
      let items: BulkItemResult[] | "all-created" | undefined;
      let failure: unknown;
      let unreachable = false;
      try {
        items = await this.#post(body, pending?.length ?? count, signal);
        this.#failures = 0;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        failure = requestError(err);
        unreachable = err instanceof errors.ConnectionError || err instanceof errors.TimeoutError;
        if (unreachable) this.#events.unreachable?.({ attempt: ++this.#failures, err: failure });
        else this.#failures = 0;
      }

      if (items === "all-created")
        return { delivered: delivered + (pending?.length ?? count), rejected };
      if (items !== undefined) {
        const sent = pending ?? chunkRecords();
        const retry: LogRecord[] = [];
        items.forEach((item, i) => {
          if ((item.status >= 200 && item.status < 300) || item.status === 409) delivered++;
          else if (item.status === 429 || item.status >= 500) retry.push(sent[i] as LogRecord);
          else {
            const record = sent[i] as LogRecord;
            rejected.push({ record, status: item.status, reason: itemReason(item) });
          }
        });
        if (retry.length === 0) return { delivered, rejected };
        failure = new Error(`${retry.length} of ${sent.length} items answered 429 or 5xx`);
        pending = retry;
      }

      const records = pending?.length ?? count;
      const delayMs = backoffDelay(attempt, this.#options.retryMinMs, this.#options.retryMaxMs);
      this.#events.retry?.({ attempt, delayMs, err: failure, records, unreachable });
      await sleep(delayMs, signal);
      if (pending !== undefined) body = this.#body(pending);
    }
  }

  #body(records: readonly LogRecord[]): Buffer {
    return Buffer.from(records.map((r) => this.#item(r)).join(""), "utf8");
  }

  /**
   * One `_bulk` request; returns the items, "all-created" when the answer says there were no
   * errors, or throws for a failed request.
   */
  async #post(
    body: Buffer,
    count: number,
    signal: AbortSignal,
  ): Promise<BulkItemResult[] | "all-created"> {
    const response = (await this.#client.transport.request(
      {
        method: "POST",
        path: this.#path,
        bulkBody: body,
        querystring: { filter_path: FILTER_PATH },
      },
      { signal, maxRetries: 0, headers: { "content-type": "application/x-ndjson" } },
    )) as { errors?: boolean; items?: Record<string, BulkItemResult>[] };
    if (response.errors !== true) return "all-created";
    const items = (response.items ?? []).map((item) => Object.values(item)[0] as BulkItemResult);
    if (items.length !== count) {
      throw new Error(`_bulk answered ${items.length} items for ${count} documents`);
    }
    return items;
  }
}

/**
 * A failed request as a short error. The client's own errors carry the request: its whole body
 * (the job's log lines, as one JSON key per byte) and, on a connection error, the raw request
 * head with its `authorization` header; logged whole, they would print both.
 */
export function requestError(err: unknown): Error {
  if (err instanceof errors.ResponseError) {
    const e = (err.body as { error?: { type?: string; reason?: string } } | undefined)?.error;
    const why =
      e && typeof e === "object"
        ? itemReason({ status: err.statusCode ?? 0, error: e })
        : err.message;
    // Credentials are retried too (a rotated secret may be remounted), but the log says what
    // to fix.
    const fix =
      err.statusCode === 401 || err.statusCode === 403
        ? "; check the sink's username and passwordFile, or apiKeyFile, and the role's index privileges"
        : "";
    return new Error(`_bulk answered ${err.statusCode}: ${why}${fix}`);
  }
  if (!(err instanceof Error)) return new Error(String(err));
  const short = new Error(err.message);
  short.name = err.name;
  return short;
}

function itemReason(item: BulkItemResult): string {
  const e = item.error;
  return e ? `${e.type ?? "error"}: ${e.reason ?? ""}`.trim() : `status ${item.status}`;
}

function clientOptions(o: ElasticsearchSinkOptions): ClientOptions {
  const options: ClientOptions = {
    node: o.nodes,
    maxRetries: 0,
    requestTimeout: o.requestTimeoutMs,
    compression: false,
    // Node's own HTTP client rather than the default undici: measured in issue 5's
    // benchmark, 14 MiB less peak RSS for the same CPU.
    Connection: HttpConnection,
  };
  if (o.apiKey !== undefined) options.auth = { apiKey: o.apiKey };
  else if (o.username !== undefined) {
    options.auth = { username: o.username, password: o.password ?? "" };
  }
  if (o.caFile !== undefined) options.tls = { ca: readFileSync(o.caFile, "utf8") };
  return options;
}
