/**
 * The sidecar's own metrics, registered on the runtime's registry (served on the health port).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { SendResult } from "./datadog-sinks.ts";
import type { Conflict, ConflictKind } from "./merge.ts";
import type { TextFile } from "./textfiles.ts";

export interface ExporterMetrics {
  refreshed(
    dir: string,
    series: number,
    files: readonly TextFile[],
    conflicts: readonly Conflict[],
  ): void;
  conflict(dir: string, kind: ConflictKind): void;
  push(result: "ok" | "retry" | "rejected"): void;
  datadog(result: SendResult): void;
}

export function exporterMetrics(registry: Registry, scrapes: () => number): ExporterMetrics {
  const registers = [registry];
  const series = new Gauge({
    name: "metrics_exporter_series",
    help: "Series in use from each directory's files.",
    labelNames: ["dir"],
    registers,
  });
  const files = new Gauge({
    name: "metrics_exporter_files",
    help: "Files in each directory by state (ok, stale, pending, invalid, unreadable).",
    labelNames: ["dir", "state"],
    registers,
  });
  const invalid = new Counter({
    name: "metrics_exporter_invalid_files_total",
    help: "File versions left out because they could not be read or parsed.",
    labelNames: ["dir"],
    registers,
  });
  const conflicts = new Counter({
    name: "metrics_exporter_conflicts_total",
    help: "Conflicts found between files (type, help, duplicate), each counted once.",
    labelNames: ["dir", "kind"],
    registers,
  });
  const pushes = new Counter({
    name: "metrics_exporter_pushes_total",
    help: "Pushgateway PUT attempts by result (ok, retry, rejected).",
    labelNames: ["result"],
    registers,
  });
  const points = new Counter({
    name: "metrics_exporter_datadog_points_total",
    help: "Datadog points by result (sent, rejected, failed, oversized).",
    labelNames: ["result"],
    registers,
  });
  new Counter({
    name: "metrics_exporter_scrapes_total",
    help: "Scrapes of the merged prometheus/ files served.",
    registers,
    collect() {
      this.reset();
      this.inc(scrapes());
    },
  });
  const seenInvalid = new WeakSet<TextFile>();

  return {
    refreshed(dir, n, list) {
      series.set({ dir }, n);
      for (const state of ["ok", "stale", "pending", "invalid", "unreadable"] as const) {
        files.set({ dir, state }, list.filter((f) => f.status === state).length);
      }
      for (const f of list) {
        if ((f.status === "invalid" || f.status === "unreadable") && !seenInvalid.has(f)) {
          seenInvalid.add(f);
          invalid.inc({ dir });
        }
      }
    },
    conflict: (dir, kind) => conflicts.inc({ dir, kind }),
    push: (result) => pushes.inc({ result }),
    datadog(r) {
      points.inc({ result: "sent" }, r.sent);
      points.inc({ result: "rejected" }, r.rejected);
      points.inc({ result: "failed" }, r.failed);
      points.inc({ result: "oversized" }, r.oversized);
    },
  };
}
