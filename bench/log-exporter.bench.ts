// log-exporter throughput, CPU and memory against rsyslog and syslog-ng (issue 5).
//
// The same input (LOG_EXPORTER_BENCH_MIB MiB of ~200-byte lines over 8 files, default 1024)
// goes into the same counting `_bulk` receiver (bench/lib/log-receiver.ts, its own process) by:
//   log-exporter  the bundle, sink elasticsearch
//   rsyslog       imfile → omelasticsearch (installed with apt)
//   syslog-ng     wildcard-file → elasticsearch-http with flags(flow-control) (unpacked privately)
// A run ends when the receiver has every line (or nothing arrived for 20 s); CPU seconds and
// peak RSS (VmHWM) are read from /proc just before the shipper is stopped. Each shipper runs
// LOG_EXPORTER_BENCH_RUNS times (default 3), interleaved; medians are reported.
// Then log-exporter with the whole input as a backlog behind a slow receiver, as often.
//
//   pnpm bench log-exporter                      (needs `pnpm run build` first; the bench runs it)
//   LOG_EXPORTER_BENCH_MIB=128 LOG_EXPORTER_BENCH_RUNS=1 pnpm bench log-exporter
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { writeLogFiles } from "./lib/log-data.ts";
import {
  installPeers,
  logExporter,
  processUsage,
  rsyslog,
  type Shipper,
  syslogNg,
} from "./lib/log-shippers.ts";

const FILES = 8;
const MIB = Number(process.env.LOG_EXPORTER_BENCH_MIB ?? 1024);
const RUNS = Number(process.env.LOG_EXPORTER_BENCH_RUNS ?? 3);
const ROOT = join(import.meta.dirname, "..");
const MEMORY_FLAGS = ["--max-semi-space-size=1", "--max-old-space-size=64"];

interface Receiver {
  port: number;
  child: ChildProcess;
  stats(): Promise<{
    docs: number;
    distinct: number;
    duplicates: number;
    firstAt: number;
    lastAt: number;
  }>;
}

interface RunResult {
  mibPerSecond: number;
  linesPerSecond: number;
  cpuSeconds: number;
  mibPerCpuSecond: number;
  peakRssMiB: number;
  distinct: number;
  duplicates: number;
}

async function startReceiver(linesPerFile: number, delayMs = 0): Promise<Receiver> {
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "lib/log-receiver.ts"),
      String(FILES),
      String(linesPerFile),
      String(delayMs),
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const [line] = (await once(
    createInterface({ input: child.stdout as NodeJS.ReadableStream }),
    "line",
  )) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return {
    port,
    child,
    stats: async () =>
      (await (await fetch(`http://127.0.0.1:${port}/_stats`)).json()) as Awaited<
        ReturnType<Receiver["stats"]>
      >,
  };
}

/** One shipper over the input into a fresh receiver. */
async function runOnce(
  shipper: Shipper,
  logs: string,
  linesPerFile: number,
  delayMs = 0,
): Promise<RunResult> {
  const receiver = await startReceiver(linesPerFile, delayMs);
  const work = mkdtempSync(join(tmpdir(), `bench-${shipper.name}-`));
  const expected = FILES * linesPerFile;
  const started = Date.now();
  const child = shipper.start({ logs, port: receiver.port, work });
  let usage = { cpuSeconds: 0, peakRssMiB: 0 };
  let stats = await receiver.stats();
  let lastProgress = Date.now();
  let lastDocs = 0;
  // Poll until every line arrived or nothing moved for 20 s; sample /proc each time, so the
  // figures are the shipper's own even if it exits by itself.
  while (
    stats.distinct < expected &&
    Date.now() - lastProgress < 20_000 &&
    child.exitCode === null
  ) {
    await new Promise((r) => setTimeout(r, 200));
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        usage = processUsage(child.pid);
      } catch {
        // exited between the check and the read
      }
    }
    stats = await receiver.stats();
    if (stats.docs !== lastDocs) {
      lastDocs = stats.docs;
      lastProgress = Date.now();
    }
  }
  const exited =
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, "exit");
  child.kill("SIGKILL");
  receiver.child.kill("SIGTERM");
  await exited;
  rmSync(work, { recursive: true, force: true });

  const seconds = Math.max(0.001, ((stats.lastAt || Date.now()) - started) / 1000);
  const mib = (MIB * stats.distinct) / expected;
  return {
    mibPerSecond: mib / seconds,
    linesPerSecond: stats.distinct / seconds,
    cpuSeconds: usage.cpuSeconds,
    mibPerCpuSecond: mib / Math.max(0.001, usage.cpuSeconds),
    peakRssMiB: usage.peakRssMiB,
    distinct: stats.distinct,
    duplicates: stats.duplicates,
  };
}

function show(name: string, r: RunResult, expected: number): void {
  console.log(
    `${name.padEnd(28)} ${r.mibPerSecond.toFixed(1).padStart(7)} MiB/s ${Math.round(r.linesPerSecond).toString().padStart(9)} lines/s ` +
      `${r.cpuSeconds.toFixed(1).padStart(6)} CPU s ${r.mibPerCpuSecond.toFixed(1).padStart(6)} MiB/CPU-s ` +
      `${r.peakRssMiB.toFixed(0).padStart(5)} MiB RSS  ${r.distinct}/${expected} lines, ${r.duplicates} dup`,
  );
}

async function main(): Promise<void> {
  // Build the bundle (the shipped artefact) and install the peers, as on a fresh machine.
  execFileSync("pnpm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  const notes: string[] = [];
  const ours = logExporter();
  const shippers: Shipper[] = [ours];
  try {
    const folder = installPeers();
    shippers.push(rsyslog, syslogNg(folder));
  } catch (err) {
    notes.push(
      `peers not run: could not install rsyslog/syslog-ng (${String(err).split("\n")[0]})`,
    );
  }

  const input = mkdtempSync(join(tmpdir(), "bench-logs-"));
  const logs = join(input, "logs");
  mkdirSync(logs);
  const linesPerFile = await writeLogFiles(logs, FILES, MIB / FILES);
  const expected = FILES * linesPerFile;
  console.log(`input: ${MIB} MiB, ${expected} lines over ${FILES} files; ${RUNS} run(s) each`);

  const results = new Map<string, RunResult[]>(shippers.map((s) => [s.name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const shipper of shippers) {
      const r = await runOnce(shipper, logs, linesPerFile);
      show(`${shipper.name} run ${run + 1}`, r, expected);
      results.get(shipper.name)?.push(r);
    }
  }

  // Backlog behind a slow sink: every request is answered 50 ms late. Its peak RSS varies more
  // from run to run than the others (a few MiB, with the moments the collector runs), so it
  // is a median too.
  const slowRuns: RunResult[] = [];
  for (let run = 0; run < RUNS; run++) {
    slowRuns.push(await runOnce(ours, logs, linesPerFile, 50));
    show(`log-exporter, slow sink ${run + 1}`, slowRuns[run] as RunResult, expected);
  }
  const slowMedian = (key: keyof RunResult) => median(slowRuns.map((r) => r[key]));
  // For reference: the same with a small V8 young generation and old-space cap, as an image
  // could set through NODE_OPTIONS (memory for CPU).
  const capped = logExporter(MEMORY_FLAGS);
  const cappedRun = await runOnce(capped, logs, linesPerFile);
  show("log-exporter, capped heap", cappedRun, expected);
  const cappedSlow = await runOnce(capped, logs, linesPerFile, 50);
  show("log-exporter, capped, slow", cappedSlow, expected);
  rmSync(input, { recursive: true, force: true });

  const med = (name: string, key: keyof RunResult) =>
    median((results.get(name) ?? []).map((r) => r[key]));
  const metrics: BenchMetric[] = [];
  const peers = shippers.filter((s) => s !== ours).map((s) => s.name);
  const bestPeer = Math.max(0, ...peers.map((p) => med(p, "mibPerCpuSecond")));
  const note = `median of ${RUNS}, ${MIB} MiB over ${FILES} files`;
  metrics.push(
    {
      name: "log-exporter throughput",
      value: med(ours.name, "mibPerSecond"),
      unit: "MiB/s",
      goal: { op: ">=", value: 100 },
      note,
    },
    { name: "log-exporter lines", value: med(ours.name, "linesPerSecond"), unit: "lines/s", note },
    { name: "log-exporter CPU", value: med(ours.name, "cpuSeconds"), unit: "s", note },
    {
      name: "log-exporter MiB per CPU-second",
      value: med(ours.name, "mibPerCpuSecond"),
      unit: "MiB/CPU-s",
      note,
    },
    {
      name: "log-exporter peak RSS",
      value: med(ours.name, "peakRssMiB"),
      unit: "MiB",
      goal: { op: "<=", value: 100 },
      note,
    },
    {
      name: "log-exporter lines lost or duplicated",
      value: Math.max(
        ...(results.get(ours.name) ?? []).map((r) => expected - r.distinct + r.duplicates),
      ),
      unit: "lines",
      goal: { op: "<=", value: 0 },
      note,
    },
    {
      name: "log-exporter peak RSS, backlog behind a slow sink",
      value: slowMedian("peakRssMiB"),
      unit: "MiB",
      goal: { op: "<=", value: 100 },
      note: `median of ${RUNS}, 50 ms per request; highest ${Math.max(...slowRuns.map((r) => r.peakRssMiB)).toFixed(1)}`,
    },
    {
      name: "log-exporter throughput, slow sink",
      value: slowMedian("mibPerSecond"),
      unit: "MiB/s",
      note: `median of ${RUNS}, 50 ms per request`,
    },
    {
      name: "log-exporter lines lost or duplicated, slow sink",
      value: Math.max(...slowRuns.map((r) => expected - r.distinct + r.duplicates)),
      unit: "lines",
      goal: { op: "<=", value: 0 },
    },
  );
  const flags = MEMORY_FLAGS.join(" ");
  metrics.push(
    {
      name: `log-exporter peak RSS with ${flags}`,
      value: cappedRun.peakRssMiB,
      unit: "MiB",
      note: "one run",
    },
    {
      name: `log-exporter MiB per CPU-second with ${flags}`,
      value: cappedRun.mibPerCpuSecond,
      unit: "MiB/CPU-s",
      note: "one run",
    },
    {
      name: `log-exporter peak RSS, slow sink, with ${flags}`,
      value: cappedSlow.peakRssMiB,
      unit: "MiB",
      note: "one run",
    },
  );
  notes.push(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on ${cpus().length} cores`,
  );
  if (bestPeer > 0) {
    metrics.push({
      name: "log-exporter MiB per CPU-second vs the better peer",
      value: med(ours.name, "mibPerCpuSecond") / bestPeer,
      unit: "x",
      goal: { op: ">=", value: 4 },
      note,
    });
  }
  for (const peer of peers) {
    metrics.push(
      { name: `${peer} throughput`, value: med(peer, "mibPerSecond"), unit: "MiB/s", note },
      {
        name: `${peer} MiB per CPU-second`,
        value: med(peer, "mibPerCpuSecond"),
        unit: "MiB/CPU-s",
        note,
      },
      { name: `${peer} peak RSS`, value: med(peer, "peakRssMiB"), unit: "MiB", note },
      { name: `${peer} lines lost`, value: expected - med(peer, "distinct"), unit: "lines", note },
    );
  }
  await writeBenchReport({ bench: "log-exporter", metrics, notes });
}

await main();
