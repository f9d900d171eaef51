/**
 * Runs the benchmarks, `bench/*.bench.ts`, one after another with Node 24 and ends with one
 * table of every figure they reported, each next to its goal.
 *
 *   pnpm bench                   every benchmark
 *   pnpm bench startup tail      only those whose file name contains one of the words
 *   pnpm bench --strict          exit 1 when a figure misses its goal (default: only report it)
 *
 * A benchmark is a plain script: it prints what it likes while it runs and, at the end, calls
 * `writeBenchReport` (below) to leave its figures in `.bench/<name>.json`. Benchmarks run one at
 * a time so that they do not compete for the CPU, and each in its own process so that one's
 * heap does not inflate the next one's RSS.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const BENCH_DIR = path.join(ROOT, "bench");
/** Where benchmarks leave their reports; ignored by git. */
export const REPORT_DIR = path.join(ROOT, ".bench");

/** One figure a benchmark measured. */
export interface BenchMetric {
  /** What was measured, e.g. `log-exporter start-up to first log line`. */
  name: string;
  value: number;
  /** `ms`, `MiB`, `MiB/s`, `lines/s`, `%` ... */
  unit: string;
  /** The goal from the issue; absent for reference figures (`node -e 0`, a bare loop, `cat`). */
  goal?: { op: "<=" | ">="; value: number };
  /** How it was measured when the name does not say: `median of 15 runs`. */
  note?: string;
}

/** What a benchmark leaves in `.bench/<bench>.json`. */
export interface BenchReport {
  /** The benchmark's name: its file name without `.bench.ts`. */
  bench: string;
  metrics: BenchMetric[];
  /** Anything the reader needs to judge the figures: machine load, skipped parts and why. */
  notes?: string[];
}

/** Writes a benchmark's report where `pnpm bench` collects it; returns the file's path. */
export async function writeBenchReport(report: BenchReport): Promise<string> {
  await mkdir(REPORT_DIR, { recursive: true });
  const file = path.join(REPORT_DIR, `${report.bench}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/** The median of some measurements (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Whether a figure meets its goal; undefined when it has none. */
export function meetsGoal(metric: BenchMetric): boolean | undefined {
  if (!metric.goal) return undefined;
  return metric.goal.op === "<="
    ? metric.value <= metric.goal.value
    : metric.value >= metric.goal.value;
}

interface BenchRun {
  bench: string;
  exitCode: number;
  seconds: number;
  report?: BenchReport;
  problem?: string;
}

/** The benchmark files, filtered by the words given on the command line. */
function selectBenches(words: string[]): string[] {
  const files = existsSync(BENCH_DIR)
    ? readdirSync(BENCH_DIR).filter((f) => f.endsWith(".bench.ts"))
    : [];
  return files
    .filter((f) => words.length === 0 || words.some((w) => f.includes(w)))
    .sort()
    .map((f) => path.join(BENCH_DIR, f));
}

/** Runs one benchmark file in its own Node process and reads the report it left. */
async function runBench(file: string): Promise<BenchRun> {
  const bench = path.basename(file, ".bench.ts");
  const reportFile = path.join(REPORT_DIR, `${bench}.json`);
  // A report left by an earlier run must not pass for this run's.
  await rm(reportFile, { force: true });

  console.log(`\n=== ${bench} (${path.relative(ROOT, file)})`);
  const started = performance.now();
  const exitCode = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: "inherit" });
    child.on("error", () => resolve(127));
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const seconds = (performance.now() - started) / 1000;

  const run: BenchRun = { bench, exitCode, seconds };
  if (!existsSync(reportFile)) {
    run.problem = `wrote no ${path.relative(ROOT, reportFile)}`;
    return run;
  }
  try {
    const report = JSON.parse(await readFile(reportFile, "utf8")) as BenchReport;
    if (!Array.isArray(report.metrics)) throw new Error("it has no metrics array");
    run.report = report;
  } catch (err) {
    run.problem = `could not read ${path.relative(ROOT, reportFile)}: ${(err as Error).message}`;
  }
  return run;
}

function formatValue(value: number, unit: string): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

/** Prints the final table: one row per figure, grouped by benchmark. */
function printSummary(runs: BenchRun[]): void {
  const rows: string[][] = [["benchmark", "figure", "value", "goal", ""]];
  for (const run of runs) {
    for (const m of run.report?.metrics ?? []) {
      const ok = meetsGoal(m);
      rows.push([
        run.bench,
        m.note ? `${m.name} (${m.note})` : m.name,
        formatValue(m.value, m.unit),
        m.goal ? `${m.goal.op} ${m.goal.value} ${m.unit}` : "",
        ok === undefined ? "" : ok ? "ok" : "MISSED",
      ]);
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  console.log("\n=== summary");
  for (const row of rows) {
    console.log(
      row
        .map((cell, i) => (i === 2 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    );
  }
  for (const run of runs) {
    for (const note of run.report?.notes ?? []) console.log(`note (${run.bench}): ${note}`);
    if (run.exitCode !== 0) console.log(`${run.bench}: exited with code ${run.exitCode}`);
    if (run.problem) console.log(`${run.bench}: ${run.problem}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const strict = argv.includes("--strict");
  const words = argv.filter((a) => !a.startsWith("--"));
  const files = selectBenches(words);
  if (files.length === 0) {
    console.error(
      `could not find a benchmark${words.length > 0 ? ` matching ${words.join(", ")}` : ""} ` +
        "in bench/*.bench.ts",
    );
    return 2;
  }

  const runs: BenchRun[] = [];
  for (const file of files) runs.push(await runBench(file));
  printSummary(runs);

  const broken = runs.filter((r) => r.exitCode !== 0 || r.problem);
  const missed = runs.flatMap((r) => r.report?.metrics ?? []).filter((m) => meetsGoal(m) === false);
  const total = runs.reduce((sum, r) => sum + r.seconds, 0).toFixed(0);
  console.log(
    `\n${runs.length} benchmark(s) in ${total} s; ${broken.length} failed to run; ` +
      `${missed.length} figure(s) missed their goal`,
  );
  return broken.length > 0 || (strict && missed.length > 0) ? 1 : 0;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
