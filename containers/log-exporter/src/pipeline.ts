// The delivery pipeline: envelopes of records from the sources, gathered into sink batches,
// sent with bounded concurrency, and committed strictly in the order they were read.
//
// Ordering and ownership: an envelope's `commit` (which moves a source's checkpoint) runs only
// after the sink acknowledged (or dead-lettered) every record of it AND of every envelope read
// before it, so a checkpoint never passes an undelivered line, whatever order the concurrent
// sends finish in. Rejected records are written to the dead-letter file before that commit.
import type { DeadLetterFile } from "./dead-letter.ts";
import { type Records, recordCount } from "./record.ts";
import { RecordBatch, type Rejection, type Sink } from "./sinks/sink.ts";

/** Records a source hands over together, with what to do once they are delivered. */
export interface Envelope {
  /** Record objects, or a block of lines as bytes. */
  records: Records;
  /** Approximate bytes of the records (message bytes plus a little), for batch sizing. */
  bytes: number;
  /** Moves the source's checkpoint past these records. Called once, in read order. */
  commit(): void;
  /**
   * Called once the sink is done with the records (delivered, rejected, or given up at the
   * deadline), in any order: the source may reuse their memory.
   */
  release?(): void;
}

export interface PipelineOptions {
  sink: Sink;
  /** The sink's name in the sinks file, for the dead-letter file. */
  sinkName: string;
  deadLetter: DeadLetterFile;
  /** A batch is sent once its records reach this many bytes. */
  maxBatchBytes: number;
  /** ... or after this long without a new envelope. */
  flushIntervalMs: number;
  /** Batches in flight at once. */
  concurrency: number;
  /** Called after each settled batch (for logs and metrics). */
  onBatch?(info: { records: number; delivered: number; rejected: Rejection[]; ms: number }): void;
}

/** Counts over the pipeline's life. */
export interface PipelineStats {
  read: number;
  delivered: number;
  rejected: number;
  /** Records read but not delivered when the pipeline stopped (drain deadline, hard stop). */
  undelivered: number;
  batches: number;
}

interface Entry {
  envelope: Envelope;
  settled: boolean;
}

/** Moves envelopes from an async source to a sink. One `run` per pipeline. */
export class Pipeline {
  readonly stats: PipelineStats = {
    read: 0,
    delivered: 0,
    rejected: 0,
    undelivered: 0,
    batches: 0,
  };
  readonly #options: PipelineOptions;
  /** Envelopes read and not yet committed, in read order. */
  readonly #order: Entry[] = [];
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: PipelineOptions) {
    this.#options = options;
  }

  /**
   * Reads `source` to its end and delivers everything. Returns when all is delivered, or when
   * `signal` aborted (then `stats.undelivered` counts what was not). Never throws for sink
   * failures; those are retried by the sink until `signal` aborts.
   */
  async run(source: Channel<Envelope>, signal: AbortSignal): Promise<void> {
    let batch: Entry[] = [];
    let bytes = 0;
    const dispatch = async () => {
      const entries = batch;
      batch = [];
      bytes = 0;
      while (this.#inflight.size >= this.#options.concurrency && !signal.aborted) {
        await Promise.race(this.#inflight);
      }
      if (signal.aborted) {
        for (const e of entries) this.stats.undelivered += recordCount(e.envelope.records);
        return;
      }
      const sending = this.#send(entries, signal).finally(() => this.#inflight.delete(sending));
      this.#inflight.add(sending);
    };

    while (!signal.aborted) {
      const next = await source.next(
        batch.length > 0 ? this.#options.flushIntervalMs : undefined,
        signal,
      );
      if (next === TIMEOUT) {
        await dispatch();
        continue;
      }
      if (next === undefined) break;
      const entry = { envelope: next, settled: false };
      this.#order.push(entry);
      this.stats.read += recordCount(next.records);
      batch.push(entry);
      bytes += next.bytes;
      if (bytes >= this.#options.maxBatchBytes) await dispatch();
    }
    if (batch.length > 0) await dispatch();
    await Promise.allSettled([...this.#inflight]);
    // Whatever the source still holds was never read into a batch: count what we can see.
    if (signal.aborted) {
      for (const e of source.drop()) this.stats.undelivered += recordCount(e.records);
    }
  }

  async #send(entries: Entry[], signal: AbortSignal): Promise<void> {
    const batch = new RecordBatch(entries.map((e) => e.envelope.records));
    const started = performance.now();
    this.stats.batches++;
    try {
      const result = await this.#options.sink.send(batch, signal);
      const sink = { name: this.#options.sinkName, type: this.#options.sink.kind };
      this.#options.deadLetter.write(sink, result.rejected);
      this.stats.delivered += result.delivered;
      this.stats.rejected += result.rejected.length;
      for (const e of entries) e.settled = true;
      this.#commitReady();
      this.#options.onBatch?.({
        records: batch.count,
        delivered: result.delivered,
        rejected: result.rejected,
        ms: performance.now() - started,
      });
    } catch {
      // Only an abort ends a send without a result: the drain deadline or a hard stop.
      this.stats.undelivered += batch.count;
    } finally {
      for (const e of entries) e.envelope.release?.();
    }
  }

  /** Commits the settled envelopes at the head of the read order. */
  #commitReady(): void {
    while (this.#order.length > 0 && (this.#order[0] as Entry).settled) {
      (this.#order.shift() as Entry).envelope.commit();
    }
  }
}

/** Returned by `Channel.next` when the wait timed out. */
export const TIMEOUT = Symbol("timeout");

/**
 * A bounded queue between the source loops and the pipeline: `push` waits while it is full,
 * so a slow sink stalls reading instead of growing memory.
 */
export class Channel<T> {
  readonly #items: T[] = [];
  readonly #capacity: number;
  #producers = 0;
  #closed = false;
  #wakeConsumer: (() => void) | undefined;
  readonly #wakeProducers: (() => void)[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Runs a producer loop over `source`; the channel closes when every producer is done. */
  pipeFrom(source: AsyncIterable<T>, onError: (err: unknown) => void): Promise<void> {
    this.#producers++;
    const run = async () => {
      try {
        for await (const item of source) await this.push(item);
      } catch (err) {
        onError(err);
      } finally {
        if (--this.#producers === 0) this.close();
      }
    };
    return run();
  }

  async push(item: T): Promise<void> {
    while (this.#items.length >= this.#capacity && !this.#closed) {
      await new Promise<void>((resolve) => this.#wakeProducers.push(resolve));
    }
    this.#items.push(item);
    this.#wakeConsumer?.();
  }

  close(): void {
    this.#closed = true;
    this.#wakeConsumer?.();
    for (const wake of this.#wakeProducers.splice(0)) wake();
  }

  /** The next item; `TIMEOUT` after `timeoutMs`; undefined once closed and empty or aborted. */
  async next(
    timeoutMs: number | undefined,
    signal: AbortSignal,
  ): Promise<T | typeof TIMEOUT | undefined> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        this.#wakeProducers.shift()?.();
        return item;
      }
      if (this.#closed || signal.aborted) return undefined;
      const woke = await new Promise<boolean>((resolve) => {
        const timer =
          timeoutMs === undefined ? undefined : setTimeout(() => done(false), timeoutMs);
        const onAbort = () => done(true);
        const done = (value: boolean) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.#wakeConsumer = undefined;
          resolve(value);
        };
        this.#wakeConsumer = () => done(true);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!woke) return TIMEOUT;
    }
  }

  /** Empties the queue, returning what was in it (after an abort). */
  drop(): T[] {
    return this.#items.splice(0);
  }
}
