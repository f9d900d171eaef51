// The exporter's Prometheus metrics, registered in the run's registry (served on /metrics).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PipelineStats } from "./pipeline.ts";

export interface Metrics {
  delivered: Counter;
  deadLettered: Counter;
  retries: Counter;
  warnings: Counter<"code">;
  batchSeconds: Histogram;
  /** Gauges read from the pipeline and the sources at scrape time. */
  watch(read: () => { pipeline: PipelineStats; sources: { bufferedBytes(): number }[] }): void;
}

export function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  let read: Parameters<Metrics["watch"]>[0] | undefined;
  new Gauge({
    name: "log_exporter_records_read",
    help: "Records read from the sources so far",
    registers,
    collect() {
      if (read) this.set(read().pipeline.read);
    },
  });
  new Gauge({
    name: "log_exporter_records_undelivered",
    help: "Records read but not delivered when the drain deadline passed",
    registers,
    collect() {
      if (read) this.set(read().pipeline.undelivered);
    },
  });
  new Gauge({
    name: "log_exporter_buffered_bytes",
    help: "Bytes read from files and not yet delivered (reading pauses at --max-buffered-bytes)",
    registers,
    collect() {
      if (read) this.set(read().sources.reduce((n, s) => n + s.bufferedBytes(), 0));
    },
  });
  return {
    delivered: new Counter({
      name: "log_exporter_records_delivered_total",
      help: "Records the sink acknowledged",
      registers,
    }),
    deadLettered: new Counter({
      name: "log_exporter_records_dead_lettered_total",
      help: "Records the sink rejected for good, written to the dead-letter file",
      registers,
    }),
    retries: new Counter({
      name: "log_exporter_retries_total",
      help: "Batches (or parts) sent again after a transient failure",
      registers,
    }),
    warnings: new Counter({
      name: "log_exporter_warnings_total",
      help: "Source warnings by code",
      labelNames: ["code"],
      registers,
    }),
    batchSeconds: new Histogram({
      name: "log_exporter_batch_duration_seconds",
      help: "Time from sending a batch to its acknowledgement, retries included",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    watch(fn) {
      read = fn;
    },
  };
}
