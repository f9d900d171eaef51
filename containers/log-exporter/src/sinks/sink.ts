// The sink interface: where records go. Each sink retries what can succeed later by itself and
// reports what can never succeed, so the pipeline only has to commit checkpoints.
import { type LogRecord, type Records, recordCount, recordsOf } from "../record.ts";

/** A record a sink refused for good (a mapping error, an invalid entry): it is dead-lettered. */
export interface Rejection {
  record: LogRecord;
  /** The sink's status for it, e.g. 400 or the gRPC code name. */
  status: number | string;
  /** The sink's reason, as given. */
  reason: string;
}

/** What became of one batch: everything not rejected was delivered. */
export interface SendResult {
  delivered: number;
  rejected: Rejection[];
}

/**
 * The records of one batch in read order, as the sources handed them over: record objects and
 * line blocks. A sink that works on bytes encodes the blocks directly (elasticsearch, file);
 * the others take `records()`.
 */
export class RecordBatch {
  readonly parts: readonly Records[];
  readonly count: number;
  #records: readonly LogRecord[] | undefined;

  constructor(parts: readonly Records[]) {
    this.parts = parts;
    let count = 0;
    for (const part of parts) count += recordCount(part);
    this.count = count;
  }

  /** Every record as an object, in order (made on the first call). */
  records(): readonly LogRecord[] {
    this.#records ??=
      this.parts.length === 1 ? recordsOf(this.parts[0] as Records) : this.parts.flatMap(recordsOf);
    return this.#records;
  }
}

/**
 * A destination for records.
 *
 * `send` resolves once every record of the batch is either acknowledged by the destination or
 * rejected as permanently invalid. Transient failures (connection errors, 429, 5xx, missing
 * acks) are retried with backoff inside `send`, never duplicating what was acknowledged, until
 * `signal` aborts: then `send` rejects with the abort reason and the whole batch counts as
 * undelivered. Several `send` calls may be in flight at once.
 */
export interface Sink {
  readonly kind: string;
  send(batch: RecordBatch, signal: AbortSignal): Promise<SendResult>;
  /** Releases connections; pending sends should have settled first. */
  close(): Promise<void>;
}

/** Events a sink reports; the run loop logs them (libraries never print). */
export interface SinkEvents {
  /**
   * A transient failure that will be retried after `delayMs`. `unreachable` when no server
   * answered: that was reported as `unreachable` already.
   */
  retry?(info: {
    attempt: number;
    delayMs: number;
    err: unknown;
    records: number;
    unreachable?: boolean;
  }): void;
  /**
   * A connection attempt failed: records wait until the destination answers. `attempt` counts
   * the failed attempts since the last connection that worked.
   */
  unreachable?(info: { attempt: number; err: unknown }): void;
}
