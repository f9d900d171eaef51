// The stackdriver sink: Cloud Logging's WriteLogEntries through @google-cloud/logging.
//
// Limits (cloud.google.com/logging/quotas): a request is capped at 10 MB and an entry at about
// 256 KiB. Batches stay under `maxRequestBytes`; a longer message is split into pieces under
// `maxEntryBytes`, each flagged `split` with its own insertId. Entries carry a deterministic
// `insertId` (the record id), which Cloud Logging uses to drop duplicates of a retried write.
//
// With `partialSuccess`, the valid entries of a request are written and the call fails with
// WriteLogEntriesPartialErrors (per entry index) in the status details: entries with a
// permanent code are dead-lettered, the others retried alone. The library's own retries are
// off (`maxRetries: 0`) so that the drain deadline bounds every wait.
import { type Log, Logging } from "@google-cloud/logging";
import { credentials } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { metaFields } from "../document.ts";
import { FLAG_NAMES, Flag, type LogRecord, type RecordMeta, recordId } from "../record.ts";
import { backoffDelay, sleep } from "../retry.ts";
import type { RecordBatch, Rejection, SendResult, Sink, SinkEvents } from "./sink.ts";

/** Options of the stackdriver sink (from the sinks file). */
export interface StackdriverSinkOptions {
  projectId: string;
  /** Log id, e.g. `buildkite-jobs`; the full name is `projects/<project>/logs/<logId>`. */
  logId: string;
  /** `k8s_container` resource labels; pod and container default from the record metadata. */
  location: string;
  clusterName: string;
  /** Service account key file; without it, workload identity (application default). */
  keyFile?: string;
  /** Endpoint override, e.g. a regional endpoint or a local fake (`host`, `port`). */
  apiEndpoint?: string;
  port?: number;
  /** Plain-text gRPC (only for a local fake). */
  insecure?: boolean;
  maxRequestBytes: number;
  maxEntryBytes: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** gRPC codes after which the same entry can never succeed. */
const PERMANENT = new Set([3, 5, 7, 9, 11, 12]); // INVALID_ARGUMENT NOT_FOUND PERMISSION_DENIED FAILED_PRECONDITION OUT_OF_RANGE UNIMPLEMENTED
const DEADLINE_EXCEEDED = 4;
const UNAVAILABLE = 14;
const PER_ENTRY_OVERHEAD = 512;
/** Room left in a split piece for the entry's other fields (the limit counts the whole entry). */
const SPLIT_MARGIN = 8192;

/** google.rpc.Status and WriteLogEntriesPartialErrors, the two messages we must decode. */
const detailTypes = protobuf.Root.fromJSON({
  // A map field: protobufjs's JSON form has `keyType`, which its INamespace type omits.
  nested: {
    Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
    Status: {
      fields: {
        code: { type: "int32", id: 1 },
        message: { type: "string", id: 2 },
        details: { rule: "repeated", type: "Any", id: 3 },
      },
    },
    PartialErrors: {
      fields: { log_entry_errors: { keyType: "int32", type: "Status", id: 1 } as protobuf.IField },
    },
  },
});
const StatusType = detailTypes.lookupType("Status");
const PartialErrorsType = detailTypes.lookupType("PartialErrors");

type Piece = { record: LogRecord; message: string; insertId: string; flags: number };

/** Ships records to Cloud Logging. */
export class StackdriverSink implements Sink {
  readonly kind = "stackdriver";
  readonly #options: StackdriverSinkOptions;
  readonly #logging: Logging;
  readonly #log: Log;
  readonly #resource: { type: string; labels: Record<string, string> };
  readonly #static: Record<string, unknown>;
  readonly #labels: Record<string, string>;
  readonly #events: SinkEvents;
  /** Writes that found no server since the last one that got an answer. */
  #failures = 0;

  constructor(options: StackdriverSinkOptions, meta: RecordMeta, events: SinkEvents = {}) {
    this.#options = options;
    this.#events = events;
    this.#logging = new Logging({
      projectId: options.projectId,
      ...(options.keyFile === undefined ? {} : { keyFilename: options.keyFile }),
      ...(options.apiEndpoint === undefined ? {} : { apiEndpoint: options.apiEndpoint }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.insecure
        ? { sslCreds: credentials.createInsecure(), universeDomain: "googleapis.com" }
        : {}),
    });
    this.#log = this.#logging.log(options.logId, { removeCircular: false });
    this.#resource = {
      type: "k8s_container",
      labels: {
        project_id: options.projectId,
        location: options.location,
        cluster_name: options.clusterName,
        namespace_name: meta.kubernetes?.namespace ?? "",
        pod_name: meta.kubernetes?.podName ?? "",
        container_name: meta.kubernetes?.containerName ?? "",
      },
    };
    this.#labels = { ...meta.labels };
    // Labels are entry labels in Cloud Logging; kubernetes.* is the resource.
    const { buildkite } = metaFields(meta);
    this.#static = buildkite ? { buildkite } : {};
  }

  async send(batch: RecordBatch, signal: AbortSignal): Promise<SendResult> {
    const records = batch.records();
    const pieces = records.flatMap((r) => this.#split(r));
    const rejected: Rejection[] = [];
    for (const batch of this.#batches(pieces)) rejected.push(...(await this.#write(batch, signal)));
    const failed = new Set(rejected.map((r) => r.record));
    // A record split into pieces is rejected once, if any piece was.
    const unique = [...failed].map(
      (record) => rejected.find((r) => r.record === record) as Rejection,
    );
    return { delivered: records.length - unique.length, rejected: unique };
  }

  async close(): Promise<void> {
    // The gapic client is created lazily on the first write.
    const client = this.#logging.loggingService as { close?: () => Promise<void> };
    await client.close?.();
  }

  /** One piece per record, or several when the message is over the entry limit. */
  #split(record: LogRecord): Piece[] {
    const id = recordId(record);
    const limit = this.#options.maxEntryBytes - SPLIT_MARGIN;
    const bytes = Buffer.from(record.message, "utf8");
    if (bytes.length <= limit)
      return [{ record, message: record.message, insertId: id, flags: record.flags }];
    const pieces: Piece[] = [];
    for (let start = 0, n = 0; start < bytes.length; n++) {
      let end = Math.min(bytes.length, start + limit);
      while (end < bytes.length && ((bytes[end] as number) & 0xc0) === 0x80) end--;
      const message = bytes.subarray(start, end).toString("utf8");
      pieces.push({ record, message, insertId: `${id}.${n}`, flags: record.flags | Flag.SPLIT });
      start = end;
    }
    return pieces;
  }

  *#batches(pieces: Piece[]): Generator<Piece[]> {
    let batch: Piece[] = [];
    let size = 0;
    for (const piece of pieces) {
      const bytes = Buffer.byteLength(piece.message) + PER_ENTRY_OVERHEAD;
      if (batch.length > 0 && size + bytes > this.#options.maxRequestBytes) {
        yield batch;
        batch = [];
        size = 0;
      }
      batch.push(piece);
      size += bytes;
    }
    if (batch.length > 0) yield batch;
  }

  /** Writes one batch until every piece is written or rejected; returns the rejections. */
  async #write(pieces: Piece[], signal: AbortSignal): Promise<Rejection[]> {
    const rejected: Rejection[] = [];
    let pending = pieces;
    for (let attempt = 1; pending.length > 0; attempt++) {
      signal.throwIfAborted();
      let err: unknown;
      try {
        await this.#log.write(
          pending.map((p) => this.#entry(p)),
          {
            resource: this.#resource,
            partialSuccess: true,
            gaxOptions: { retry: null, timeout: 60_000 },
          },
        );
        this.#failures = 0;
        return rejected;
      } catch (e) {
        err = e;
      }
      signal.throwIfAborted();

      const code = (err as { code?: number }).code ?? 2;
      // UNAVAILABLE (no connection, or the service says so) and DEADLINE_EXCEEDED: nobody
      // answered, which is reported as an unreachable sink rather than one retry at a time.
      const unreachable = code === UNAVAILABLE || code === DEADLINE_EXCEEDED;
      if (unreachable) this.#events.unreachable?.({ attempt: ++this.#failures, err });
      else this.#failures = 0;
      const perEntry = partialErrors(err);
      if (perEntry !== undefined) {
        const retry: Piece[] = [];
        for (const [i, e] of perEntry) {
          const piece = pending[i];
          if (piece === undefined) continue;
          if (PERMANENT.has(e.code))
            rejected.push({ record: piece.record, status: e.code, reason: e.message });
          else retry.push(piece);
        }
        pending = retry;
        if (pending.length === 0) return rejected;
      } else if (PERMANENT.has(code)) {
        // No per-entry detail: isolate the bad entry by halving, a lone entry is rejected.
        if (pending.length === 1) {
          const reason = (err as Error).message;
          rejected.push({ record: (pending[0] as Piece).record, status: code, reason });
          return rejected;
        }
        const half = Math.ceil(pending.length / 2);
        rejected.push(...(await this.#write(pending.slice(0, half), signal)));
        rejected.push(...(await this.#write(pending.slice(half), signal)));
        return rejected;
      }

      const delayMs = backoffDelay(attempt, this.#options.retryMinMs, this.#options.retryMaxMs);
      this.#events.retry?.({ attempt, delayMs, err, records: pending.length, unreachable });
      await sleep(delayMs, signal);
    }
    return rejected;
  }

  #entry(piece: Piece) {
    const { record } = piece;
    const log: Record<string, unknown> = { offset: record.offset };
    if (record.origin.path !== undefined) log.file = { path: record.origin.path };
    if (piece.flags !== 0)
      log.flags = FLAG_NAMES.filter((_, bit) => (piece.flags & (1 << bit)) !== 0);
    const payload: Record<string, unknown> = { message: piece.message, log, ...this.#static };
    if (record.origin.stream !== undefined) payload.stream = record.origin.stream;
    return this.#log.entry(
      {
        insertId: piece.insertId,
        timestamp: new Date(record.time),
        labels: this.#labels,
        severity: record.origin.stream === "stderr" ? "ERROR" : "DEFAULT",
      },
      payload,
    );
  }
}

/** Per-entry errors from a partial-success failure, or undefined when the error has none. */
function partialErrors(err: unknown): Map<number, { code: number; message: string }> | undefined {
  const metadata = (err as { metadata?: { get(key: string): unknown[] } }).metadata;
  const raw = metadata?.get?.("grpc-status-details-bin")?.[0];
  if (!(raw instanceof Uint8Array)) return undefined;
  try {
    const status = StatusType.toObject(StatusType.decode(raw)) as {
      details?: { type_url: string; value: Uint8Array }[];
    };
    const detail = status.details?.find((d) =>
      d.type_url.endsWith(".WriteLogEntriesPartialErrors"),
    );
    if (!detail) return undefined;
    const decoded = PartialErrorsType.toObject(PartialErrorsType.decode(detail.value)) as {
      log_entry_errors?: Record<string, { code?: number; message?: string }>;
    };
    const out = new Map<number, { code: number; message: string }>();
    for (const [index, e] of Object.entries(decoded.log_entry_errors ?? {})) {
      out.set(Number(index), { code: e.code ?? 2, message: e.message ?? "" });
    }
    return out;
  } catch {
    return undefined;
  }
}
