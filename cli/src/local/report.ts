import type { Check } from "./checks.ts";
import type { ContainerResult, LocalRunReport } from "./run.ts";

// The counts a status summary may carry, in the order the table shows them.
const COUNTS = [
  "lines",
  "records",
  "files",
  "bytes",
  "series",
  "artifacts",
  "uploaded",
  "downloaded",
];

function counts(result: ContainerResult): string {
  const summary = result.status?.summary ?? {};
  const totals = new Map<string, number>();
  // Counts sit at the top of a summary or further down (per output, per source, per folder).
  const add = (key: string, value: unknown) => {
    if (COUNTS.includes(key) && typeof value === "number") {
      totals.set(key, (totals.get(key) ?? 0) + value);
    } else if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [inner, v] of Object.entries(value)) add(inner, v);
    }
  };
  add("summary", summary);
  const shown = COUNTS.filter((k) => totals.has(k)).map((k) => `${k}=${totals.get(k)}`);
  if (result.role === "workload") shown.unshift(`output_lines=${result.lines}`);
  return shown.join(" ");
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

/** The summary table of a local run: containers, the init share of the wall time, checks. */
export function formatReport(report: LocalRunReport, checks: Check[], notes: string[]): string {
  const rows = report.containers.map((c) => [
    c.name,
    c.role,
    c.exitCode === undefined ? "-" : String(c.exitCode),
    seconds(c.durationMs),
    counts(c),
  ]);
  const header = ["container", "role", "exit", "duration", "counts"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const out = ["", line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), ""];
  const share = report.wallMs > 0 ? (100 * report.initMs) / report.wallMs : 0;
  out.push(
    `wall time ${seconds(report.wallMs)}; init containers ${seconds(report.initMs)} (${share.toFixed(1)} %)`,
  );
  for (const check of checks) {
    const mark = check.skipped ? "SKIP" : check.ok ? "ok  " : "FAIL";
    out.push(`${mark} ${check.name}: ${check.skipped ?? check.detail}`);
  }
  for (const c of report.containers.filter((c) => c.exitCode !== 0 && c.role !== "init")) {
    out.push(
      `FAIL ${c.role} ${c.name} exited with ${c.exitCode ?? "no exit code (still running)"}`,
    );
  }
  for (const note of notes) out.push(`note ${note}`);
  if (report.failure) out.push(`FAIL ${report.failure}`);
  return `${out.join("\n")}\n`;
}
