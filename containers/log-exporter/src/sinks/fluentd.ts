// The fluentd sink: Forward Protocol v1 through @fluent-org/logger.
//
// Why @fluent-org/logger and not fluent-logger: fluent-logger was last released in 2019, has no
// Forward mode, and its send queue limit only triggers a flush. @fluent-org/logger (1.0.10) sends
// PackedForward with a `chunk` id per packet, resolves each event only when its chunk is acked,
// does the shared-key handshake and TLS, and has typed options.
//
// Delivery: every record of a batch is emitted; those whose chunk was not acked in time (the
// connection closed, the server restarted, the ack never came) are emitted again, with backoff,
// until acked or the drain deadline. The library's own retry and queue limits are off so that
// nothing is dropped behind our back: the pipeline bounds what is in flight. Fluentd cannot
// deduplicate, so a chunk that was stored but whose ack was lost is sent twice (at least once).
import { readFileSync } from "node:fs";
import {
  EventTime,
  FluentClient,
  type FluentClientOptions,
  FluentSocketEvent,
} from "@fluent-org/logger";
import { metaFields } from "../document.ts";
import { FLAG_NAMES, type LogRecord, type RecordMeta, recordId } from "../record.ts";
import { backoffDelay, sleep } from "../retry.ts";
import type { RecordBatch, SendResult, Sink, SinkEvents } from "./sink.ts";

/** Options of the fluentd sink (from the sinks file). */
export interface FluentdSinkOptions {
  host: string;
  port: number;
  /** The fluentd tag of every event. */
  tag: string;
  /** Shared key of the `<security>` section; enables the handshake. */
  sharedKey?: string;
  /** Our hostname in the handshake (must differ from the server's). */
  clientHostname?: string;
  username?: string;
  password?: string;
  /** Connect with TLS; `caFile` names the CA to trust. */
  tls?: boolean;
  caFile?: string;
  /** How long to wait for an ack before sending the events again. */
  ackTimeoutMs: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Ships records to a fluentd `in_forward`. */
export class FluentdSink implements Sink {
  readonly kind = "fluentd";
  readonly #client: FluentClient;
  readonly #options: FluentdSinkOptions;
  readonly #static: Record<string, unknown>;
  readonly #events: SinkEvents;

  constructor(options: FluentdSinkOptions, meta: RecordMeta, events: SinkEvents = {}) {
    this.#options = options;
    this.#events = events;
    this.#static = staticFields(meta);
    this.#client = new FluentClient(options.tag, clientOptions(options));
    // While the server cannot be reached, the library keeps reconnecting and the events wait
    // in its queue: no emit fails, so only the socket's errors tell that nothing gets through.
    let failures = 0;
    this.#client.socketOn(FluentSocketEvent.ERROR, (err) =>
      events.unreachable?.({ attempt: ++failures, err }),
    );
    this.#client.socketOn(FluentSocketEvent.ESTABLISHED, () => {
      failures = 0;
    });
  }

  async send(batch: RecordBatch, signal: AbortSignal): Promise<SendResult> {
    const records = batch.records();
    let pending = records;
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      const results = await untilAborted(
        Promise.allSettled(pending.map((r) => this.#emit(r))),
        signal,
      );
      const failed = pending.filter((_, i) => results[i]?.status === "rejected");
      if (failed.length === 0) return { delivered: records.length, rejected: [] };
      const err = (results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
      const delayMs = backoffDelay(attempt, this.#options.retryMinMs, this.#options.retryMaxMs);
      this.#events.retry?.({ attempt, delayMs, err, records: failed.length });
      await sleep(delayMs, signal);
      pending = failed;
    }
  }

  async close(): Promise<void> {
    await this.#client.disconnect();
  }

  #emit(record: LogRecord): Promise<void> {
    const fields: Record<string, unknown> = {
      message: record.message,
      "log.offset": record.offset,
      record_id: recordId(record),
      ...this.#static,
    };
    if (record.origin.path !== undefined) fields["log.file.path"] = record.origin.path;
    if (record.origin.stream !== undefined) fields.stream = record.origin.stream;
    if (record.flags !== 0) {
      fields["log.flags"] = FLAG_NAMES.filter((_, bit) => (record.flags & (1 << bit)) !== 0);
    }
    const ms = record.time;
    const time = new EventTime(Math.floor(ms / 1000), (ms % 1000) * 1e6);
    return this.#client.emit(fields, time);
  }
}

/**
 * `promise`, or a rejection with the signal's reason once it aborts: events queued while the
 * server is unreachable never settle, and the drain deadline must still end the send.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** `kubernetes.*`, `buildkite.*` and labels as flat dotted keys, the usual fluentd shape. */
function staticFields(meta: RecordMeta): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const flatten = (prefix: string, value: unknown) => {
    if (value !== null && typeof value === "object" && prefix !== "labels") {
      for (const [k, v] of Object.entries(value)) flatten(`${prefix}.${k}`, v);
    } else out[prefix] = value;
  };
  for (const [key, value] of Object.entries(metaFields(meta))) flatten(key, value);
  return out;
}

function clientOptions(o: FluentdSinkOptions): FluentClientOptions {
  const options: FluentClientOptions = {
    eventMode: "PackedForward",
    ack: { ackTimeout: o.ackTimeoutMs },
    milliseconds: true,
    flushInterval: 20,
    sendQueueIntervalFlushLimit: { length: 1000 },
    socket: {
      host: o.host,
      port: o.port,
      reconnect: { delay: 200, minDelay: 100, maxDelay: 5000 },
    },
    disconnect: { waitForPending: true, waitForPendingDelay: 5000 },
  };
  if (o.tls && options.socket) {
    options.socket.tls = o.caFile === undefined ? {} : { ca: readFileSync(o.caFile, "utf8") };
  }
  if (o.sharedKey !== undefined) {
    options.security = {
      clientHostname: o.clientHostname ?? `log-exporter-${process.pid}`,
      sharedKey: o.sharedKey,
      username: o.username ?? "",
      password: o.password ?? "",
    };
  }
  return options;
}
