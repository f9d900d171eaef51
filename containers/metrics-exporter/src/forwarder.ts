/**
 * Sends the `datadog/` files' current values to a Datadog sink: after each change (debounced)
 * and every `intervalMs`, so that gauges stay continuous on Datadog graphs while nothing
 * changes. Counts send only their increases.
 */
import { EventEmitter } from "node:events";
import {
  CountTracker,
  type DatadogPoint,
  type MappingOptions,
  type SourceFamily,
  toDatadog,
} from "./datadog.ts";
import type { DatadogSink, SendResult } from "./datadog-sinks.ts";

export interface ForwarderEvents {
  /** One send cycle ended (whatever its result). */
  sent: [result: SendResult & { duration_ms: number }];
  /** Samples that Datadog cannot take, once per metric and reason. */
  skipped: [info: { metric: string; reason: string }];
}

export interface ForwarderOptions {
  mapping: MappingOptions;
  /** Re-send period, milliseconds; 0 sends on changes and at the drain only. */
  intervalMs: number;
  debounceMs: number;
}

/** Totals of everything sent through the forwarder, for the summary and the exit code. */
export interface ForwarderTotals {
  sent: number;
  rejected: number;
  failed: number;
  oversized: number;
  requests: number;
  lastReject?: string;
  lastFailure?: string;
}

export class DatadogForwarder extends EventEmitter<ForwarderEvents> {
  readonly sink: DatadogSink;
  readonly totals: ForwarderTotals = { sent: 0, rejected: 0, failed: 0, oversized: 0, requests: 0 };
  private readonly opts: ForwarderOptions;
  private readonly counts = new CountTracker();
  private readonly warned = new Set<string>();
  private readonly stop = new AbortController();
  /** Ends a cycle started by a timer, so that the drain's cycles are bound by its signal. */
  private readonly interrupt = new AbortController();
  private families: readonly SourceFamily[] | undefined;
  /** Increases that failed last time and must be sent again (they are not committed yet). */
  private pendingUndelivered = 0;
  private debounce: NodeJS.Timeout | undefined;
  private interval: NodeJS.Timeout | undefined;
  private running: Promise<SendResult> | undefined;

  constructor(sink: DatadogSink, opts: ForwarderOptions) {
    super();
    this.sink = sink;
    this.opts = opts;
    if (opts.intervalMs > 0) {
      this.interval = setInterval(() => this.cycleSoon(), opts.intervalMs);
      this.interval.unref();
    }
  }

  /** The files' merged families changed. */
  update(families: readonly SourceFamily[]): void {
    this.families = families;
    if (this.debounce !== undefined) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.cycleSoon();
    }, this.opts.debounceMs);
    this.debounce.unref();
  }

  /**
   * The drain: one last cycle, repeated while increases stay undelivered for a reason that
   * may pass, until `signal` aborts. Resolves true when nothing is left undelivered.
   */
  async drain(signal: AbortSignal, retryMs = 1000): Promise<boolean> {
    this.stopTimers();
    this.interrupt.abort();
    for (;;) {
      while (this.running !== undefined) await this.running;
      const result = await this.cycle(AbortSignal.any([signal, this.stop.signal]));
      if (result.failed === 0) return true;
      if (signal.aborted) return false;
      // Not unref'd: this wait may be all that keeps the drain alive until its deadline.
      if (!(await sleepUnlessAborted(retryMs, signal))) return false;
    }
  }

  async close(): Promise<void> {
    this.stopTimers();
    this.stop.abort();
    while (this.running !== undefined) await this.running.catch(() => undefined);
    await this.sink.close();
  }

  private stopTimers() {
    clearTimeout(this.debounce);
    clearInterval(this.interval);
    this.debounce = undefined;
    this.interval = undefined;
  }

  private cycleSoon() {
    if (this.running !== undefined || this.families === undefined) return;
    this.cycle(AbortSignal.any([this.stop.signal, this.interrupt.signal])).catch(() => undefined);
  }

  /** Maps the current families, sends gauges and count increases, commits what got through. */
  private cycle(signal: AbortSignal): Promise<SendResult> {
    const run = async () => {
      const started = performance.now();
      const mapped = toDatadog(this.families ?? [], this.opts.mapping);
      for (const s of mapped.skipped) this.warnOnce(s);
      const increases = this.counts.increases(mapped.cumulative);
      const result = await this.sink.send([...mapped.points, ...increases], signal);
      const retry = new Set<DatadogPoint>(result.retry);
      this.counts.commit(increases.filter((p) => !retry.has(p)));
      this.pendingUndelivered = result.retry.length;
      this.add(result);
      this.emit("sent", { ...result, duration_ms: Math.round(performance.now() - started) });
      return result;
    };
    this.running = run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private add(r: SendResult) {
    const t = this.totals;
    t.sent += r.sent;
    t.rejected += r.rejected;
    t.failed += r.failed;
    t.oversized += r.oversized;
    t.requests += r.requests;
    t.lastReject = r.rejectReason ?? t.lastReject;
    t.lastFailure = r.failReason ?? t.lastFailure;
  }

  private warnOnce(s: { metric: string; reason: string }) {
    const key = `${s.metric}\n${s.reason}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.emit("skipped", s);
  }

  /** How many points the last cycle could not deliver (they are sent again next cycle). */
  get undelivered(): number {
    return this.pendingUndelivered;
  }
}

/** Waits `ms`, or less when `signal` aborts first; false when it did. */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
