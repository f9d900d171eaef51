/**
 * Throughput and memory of @buildpod/volume-watch's tail reader (issue 2). Goals: at least
 * 60 % of a bare read-and-split loop's throughput, and a peak RSS of at most 128 MiB while a
 * stalled consumer sits on a 1 GiB backlog.
 *
 * One file of 200-byte lines (BENCH_SIZE_MIB, default 1024) is generated into a fresh
 * directory once, then read from the page cache, in rounds (BENCH_RUNS, default 3), by:
 * - `cat file > /dev/null`: the floor of reading at all;
 * - a bare loop in this process: 1 MiB reads through a FileHandle, newlines found with
 *   Buffer.indexOf, nothing else: the limit (what the goal compares against);
 * - `TailReader.readRaw`: lines as one buffer plus boundary arrays (same work as the bare loop
 *   plus line-length limits, UTF-8 validation and offsets);
 * - the bare loop also decoding each line to a string (the least a text consumer needs);
 * - `TailReader.read`: lines as `{ text, offset, flags }` objects;
 * - `Tailer`: tree watch, checkpoints and acks on top (every batch acknowledged), with text
 *   lines (`next`) and with lines as bytes (`nextRaw`, what the log-exporter reads with).
 * The goal is checked on the byte forms. A text form cannot reach it: making one string per
 * line is, by itself, more than half the work (the bare loop decoding each line runs at about
 * 43 % of the limit), so the text forms are compared with that loop too.
 * A first untimed pass over a small file warms the JIT. Rounds interleave the readers so
 * that a noisy neighbour hurts all of them alike. Each
 * reader's throughput is given per wall-clock second (best round: the least disturbed) and per
 * CPU second of the process (user + system, median round), which a loaded machine disturbs
 * far less; the goal's ratio uses the CPU figures. For these sequential loops the two agree on
 * an idle machine.
 *
 * Peak RSS: a child process (bench/tail-reader-stalled.ts, bundled with esbuild as the
 * containers are) tails the file with a consumer that takes batches, reads their lines and
 * never acknowledges them; its VmHWM is read once reading has paused for 2 s.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { Tailer, TailReader } from "../shared/volume-watch/src/index.ts";

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LINE_BYTES = 200;
const CHUNK = MiB;

interface Measured {
  seconds: number;
  /** CPU seconds (user + system) spent meanwhile, by this process or by `cat`. */
  cpu: number;
  lines: number;
}

// Runs a reader and records wall time and this process's CPU time.
async function measure(reader: () => Promise<number>): Promise<Measured> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const lines = await reader();
  const seconds = (performance.now() - started) / 1000;
  const { user, system } = process.cpuUsage(cpuBefore);
  return { seconds, cpu: (user + system) / 1e6, lines };
}

// --- generating the backlog ----------------------------------------------------------------

// Log-like lines, each exactly 200 bytes with its newline, varied enough not to be one
// repeated string.
async function generate(file: string, bytes: number): Promise<number> {
  const perBlock = 40_000;
  const block = Buffer.alloc(perBlock * LINE_BYTES);
  const handle = await open(file, "w");
  let written = 0;
  let n = 0;
  try {
    while (written < bytes) {
      for (let i = 0; i < perBlock; i++, n++) {
        const head = `2026-12-03T17:${String(n % 60).padStart(2, "0")}:00.000Z INFO worker-${n % 7} request id=${n} path=/api/v1/items/${n % 997} status=200 `;
        block.write(
          head.padEnd(LINE_BYTES - 1, "abcdefghij").slice(0, LINE_BYTES - 1),
          i * LINE_BYTES,
          "latin1",
        );
        block[i * LINE_BYTES + LINE_BYTES - 1] = 0x0a;
      }
      const size = Math.min(block.length, bytes - written - ((bytes - written) % LINE_BYTES));
      if (size <= 0) break;
      await handle.write(block, 0, size);
      written += size;
    }
  } finally {
    await handle.close();
  }
  return written;
}

// --- the readers -------------------------------------------------------------------------

// `times` prints the shell's children's user and system time on its second line.
function cat(file: string): Measured {
  const started = performance.now();
  const result = spawnSync("sh", ["-c", 'cat "$0" > /dev/null; times', file], { encoding: "utf8" });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) throw new Error(`could not run cat: ${result.stderr}`);
  const children = result.stdout.trim().split("\n")[1] ?? "";
  const cpu = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
    (t, m) => t + Number(m[1]) * 60 + Number(m[2]),
    0,
  );
  return { seconds, cpu, lines: 0 };
}

async function bareLoop(file: string, decode: boolean): Promise<number> {
  const handle = await open(file, "r");
  const buf = Buffer.allocUnsafe(CHUNK + 64 * 1024);
  let position = 0;
  let carry = 0;
  let lines = 0;
  let chars = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buf, carry, CHUNK, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const view = buf.subarray(0, carry + bytesRead);
    let start = 0;
    for (let nl = view.indexOf(0x0a, start); nl >= 0; nl = view.indexOf(0x0a, start)) {
      if (decode) chars += view.toString("utf8", start, nl).length;
      lines++;
      start = nl + 1;
    }
    carry = view.length - start;
    buf.copy(buf, 0, start, view.length);
  }
  await handle.close();
  if (decode && chars === 0) throw new Error("decoded nothing");
  return lines;
}

async function tailReader(file: string): Promise<number> {
  const reader = await TailReader.open(file, { chunkSize: CHUNK });
  let lines = 0;
  let chars = 0;
  for (let batch = await reader.read(); batch; batch = await reader.read()) {
    lines += batch.lines.length;
    chars += batch.lines[batch.lines.length - 1]?.text.length ?? 0;
  }
  await reader.close();
  if (chars === 0) throw new Error("read nothing");
  return lines;
}

async function tailReaderRaw(file: string): Promise<number> {
  const reader = await TailReader.open(file, { chunkSize: CHUNK });
  let lines = 0;
  let bytes = 0;
  for (let raw = await reader.readRaw(); raw; raw = await reader.readRaw()) {
    lines += raw.count;
    bytes += raw.ends[raw.count - 1] - raw.starts[0];
  }
  await reader.close();
  if (bytes === 0) throw new Error("read nothing");
  return lines;
}

async function tailer(
  dir: string,
  expectedLines: number,
  stateDir: string,
  raw = false,
): Promise<number> {
  const t = new Tailer({
    root: dir,
    include: ["*.log"],
    checkpointFile: path.join(stateDir, `c-${Date.now()}.json`),
  });
  await t.start();
  let lines = 0;
  while (lines < expectedLines) {
    if (raw) {
      const batch = await t.nextRaw();
      if (!batch) break;
      lines += batch.count;
      t.ack(batch);
      continue;
    }
    const batch = await t.next();
    if (!batch) break;
    lines += batch.lines.length;
    t.ack(batch);
  }
  await t.close();
  return lines;
}

// --- the stalled consumer (runs in a child process) ----------------------------------------

type StalledResult = { peakMiB: number; rssMiB: number; stats: ReturnType<Tailer["stats"]> };

// The consumer runs from an esbuild bundle, as the containers do: running the TypeScript
// directly would add Node's type-stripping compiler (some 40 MiB) to the figure.
async function stalledPeak(dir: string, work: string): Promise<StalledResult> {
  const bundle = path.join(work, "tail-reader-stalled.mjs");
  await build({
    entryPoints: [path.join(import.meta.dirname, "tail-reader-stalled.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile: bundle,
    logLevel: "error",
  });
  return JSON.parse(await runNode([bundle, dir]));
}

// `node -e 0`'s own peak RSS, for scale.
async function nodePeak(): Promise<number> {
  const out = await runNode([
    "-e",
    'const s = require("fs").readFileSync("/proc/self/status", "utf8"); console.log(/VmHWM:\\s+(\\d+)/.exec(s)[1] / 1024)',
  ]);
  return Number(out);
}

async function runNode(args: string[]): Promise<string> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`node ${args[0]} exited with ${code}`);
  return out;
}

// --- the run --------------------------------------------------------------------------------

function perWall(bytes: number, m: Measured): number {
  return bytes / MiB / m.seconds;
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), "buildpod-tail-bench-"));
  const dir = path.join(work, "logs");
  const stateDir = path.join(work, "state");
  mkdirSync(dir);
  mkdirSync(stateDir);
  const file = path.join(dir, "backlog.log");
  try {
    process.stdout.write(`generating ${SIZE_MIB} MiB of ${LINE_BYTES}-byte lines in ${dir} ... `);
    const bytes = await generate(file, SIZE_MIB * MiB);
    const expectedLines = bytes / LINE_BYTES;
    console.log("done");

    cat(file); // warm the page cache: every reader below reads from memory

    // Warm the JIT on a small file of its own, so that no timed round runs unoptimized code.
    const warmDir = path.join(work, "warm");
    mkdirSync(warmDir);
    const warmBytes = await generate(path.join(warmDir, "warm.log"), 32 * MiB);
    await bareLoop(path.join(warmDir, "warm.log"), false);
    await tailReaderRaw(path.join(warmDir, "warm.log"));
    await bareLoop(path.join(warmDir, "warm.log"), true);
    await tailReader(path.join(warmDir, "warm.log"));
    await tailer(warmDir, warmBytes / LINE_BYTES, stateDir);
    await tailer(warmDir, warmBytes / LINE_BYTES, stateDir, true);

    const readers: Record<string, () => Promise<Measured>> = {
      cat: async () => cat(file),
      bare: () => measure(() => bareLoop(file, false)),
      readRaw: () => measure(() => tailReaderRaw(file)),
      bareDecode: () => measure(() => bareLoop(file, true)),
      read: () => measure(() => tailReader(file)),
      tailer: () => measure(() => tailer(dir, expectedLines, stateDir)),
      tailerRaw: () => measure(() => tailer(dir, expectedLines, stateDir, true)),
    };
    const runs: Record<string, Measured[]> = Object.fromEntries(
      Object.keys(readers).map((name) => [name, []]),
    );
    for (let r = 0; r < RUNS; r++) {
      for (const [name, run] of Object.entries(readers)) runs[name].push(await run());
      const figures = Object.entries(runs).map(
        ([k, v]) => `${k} ${perWall(bytes, v[r]).toFixed(0)}`,
      );
      console.log(`round ${r + 1}/${RUNS} (MiB/s, wall): ${figures.join(", ")}`);
    }
    for (const [name, measured] of Object.entries(runs)) {
      const wrong = measured.find((m) => name !== "cat" && m.lines !== expectedLines);
      if (wrong) throw new Error(`${name} counted ${wrong.lines} lines, expected ${expectedLines}`);
    }

    const wall = (name: string) => Math.max(...runs[name].map((m) => perWall(bytes, m)));
    const cpu = (name: string) => median(runs[name].map((m) => bytes / MiB / m.cpu));
    const peak = await stalledPeak(dir, work);
    const bareNode = await nodePeak();

    const w = `per wall second, best of ${RUNS}`;
    const c = `per CPU second, median of ${RUNS}`;
    const metrics: BenchMetric[] = [
      { name: "cat file > /dev/null", value: wall("cat"), unit: "MiB/s", note: w },
      { name: "bare read-and-split loop (the limit)", value: wall("bare"), unit: "MiB/s", note: w },
      { name: "TailReader.readRaw", value: wall("readRaw"), unit: "MiB/s", note: w },
      { name: "bare loop decoding each line", value: wall("bareDecode"), unit: "MiB/s", note: w },
      { name: "TailReader.read (text lines)", value: wall("read"), unit: "MiB/s", note: w },
      {
        name: "TailReader.read (text lines)",
        value: (wall("read") * MiB) / LINE_BYTES,
        unit: "lines/s",
        note: w,
      },
      {
        name: "Tailer (watch + acks + checkpoints)",
        value: wall("tailer"),
        unit: "MiB/s",
        note: w,
      },
      { name: "Tailer.nextRaw (bytes)", value: wall("tailerRaw"), unit: "MiB/s", note: w },

      { name: "bare read-and-split loop (the limit)", value: cpu("bare"), unit: "MiB/s", note: c },
      { name: "TailReader.readRaw", value: cpu("readRaw"), unit: "MiB/s", note: c },
      { name: "bare loop decoding each line", value: cpu("bareDecode"), unit: "MiB/s", note: c },
      { name: "TailReader.read (text lines)", value: cpu("read"), unit: "MiB/s", note: c },
      { name: "Tailer (watch + acks + checkpoints)", value: cpu("tailer"), unit: "MiB/s", note: c },
      { name: "Tailer.nextRaw (bytes)", value: cpu("tailerRaw"), unit: "MiB/s", note: c },
      {
        name: "TailReader.readRaw vs bare loop",
        value: (100 * cpu("readRaw")) / cpu("bare"),
        unit: "%",
        goal: { op: ">=", value: 60 },
        note: c,
      },
      {
        name: "Tailer.nextRaw vs bare loop",
        value: (100 * cpu("tailerRaw")) / cpu("bare"),
        unit: "%",
        goal: { op: ">=", value: 60 },
        note: c,
      },
      {
        name: "TailReader.read (text) vs bare loop",
        value: (100 * cpu("read")) / cpu("bare"),
        unit: "%",
        note: c,
      },
      {
        name: "bare loop decoding each line vs bare loop",
        value: (100 * cpu("bareDecode")) / cpu("bare"),
        unit: "%",
        note: c,
      },
      {
        name: "TailReader.read (text) vs bare loop decoding each line",
        value: (100 * cpu("read")) / cpu("bareDecode"),
        unit: "%",
        note: c,
      },
      {
        name: "peak RSS, stalled consumer, backlog",
        value: peak.peakMiB,
        unit: "MiB",
        goal: { op: "<=", value: 128 },
      },
    ];
    // `times` counts in 10 ms steps: a small file can leave cat at zero CPU seconds.
    if (Number.isFinite(cpu("cat"))) {
      metrics.splice(8, 0, {
        name: "cat file > /dev/null",
        value: cpu("cat"),
        unit: "MiB/s",
        note: c,
      });
    }
    const notes = [
      `${(bytes / MiB).toFixed(0)} MiB, ${expectedLines} lines of ${LINE_BYTES} bytes, read from the page cache`,
      `stalled consumer: read ${(peak.stats.bytesRead / MiB).toFixed(1)} MiB of the backlog, then paused=${peak.stats.paused} with ${(peak.stats.bufferedBytes / MiB).toFixed(1)} MiB buffered (budget 16 MiB); VmRSS at the end ${peak.rssMiB.toFixed(0)} MiB`,
      `for scale: node -e 0 peaks at ${bareNode.toFixed(0)} MiB here`,
      `load average at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")} on ${navigator.hardwareConcurrency} CPUs`,
    ];

    console.log("");
    for (const m of metrics) {
      const goal = m.goal ? `  (goal ${m.goal.op} ${m.goal.value} ${m.unit})` : "";
      console.log(
        `${(m.note?.startsWith("per CPU") ? `${m.name} [cpu]` : m.name).padEnd(56)} ${m.value.toFixed(m.unit === "lines/s" ? 0 : 1).padStart(12)} ${m.unit}${goal}`,
      );
    }
    for (const n of notes) console.log(`note: ${n}`);
    const written = await writeBenchReport({ bench: "tail-reader", metrics, notes });
    console.log(`wrote ${written}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
