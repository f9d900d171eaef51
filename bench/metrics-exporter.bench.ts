// metrics-exporter against node_exporter's textfile collector on the same directory, in one run:
// 200,000 series in 50 files (about 15.5 MB of text).
//
//   scrape latency     median of several scrapes each, same client and headers as Prometheus
//                      (text format, gzip); goal: ours <= 0.1 x node_exporter's
//   peak RSS           VmHWM of each process after its scrapes; goal: ours <= 0.5 x theirs
//   change visible     rename of a changed file to the first scrape showing it; goal <= 1000 ms
//   parse rate         in-process parse of the 50 files, series per second (reference)
//   push 100,000       one PUT of 100,000 series to the real Pushgateway (reference: 0.70 s)
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  PushClient,
  parseExposition,
  renderText,
} from "../containers/metrics-exporter/src/index.ts";
import { bigFiles, tempDir, writeAtomic } from "../containers/metrics-exporter/test/fixtures.ts";
import {
  freePort,
  getGzipText,
  type Running,
  startNodeExporter,
  startPushgateway,
  timedGet,
} from "../containers/metrics-exporter/test/tools.ts";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";

const ROOT = join(import.meta.dirname, "..");
const BUNDLE = join(ROOT, "containers/metrics-exporter/dist/metrics-exporter.mjs");
const SERIES = 200_000;
const FILES = 50;
const HEADERS = { accept: "text/plain;version=0.0.4", "accept-encoding": "gzip" };

const scrapeMs = (url: string, headers: Record<string, string> = HEADERS) => timedGet(url, headers);
const scrapeText = (url: string) => getGzipText(url);

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

async function main() {
  const notes: string[] = [];
  const metrics: BenchMetric[] = [];
  execFileSync(process.execPath, [join(ROOT, "scripts/build.ts"), "metrics-exporter"], {
    cwd: ROOT,
    stdio: "ignore",
  });

  // 1. One fresh directory, written once (see toolchain.md on inode reuse after rm -rf).
  const work = await tempDir("bench");
  const root = join(work, "metrics");
  const dir = join(root, "prometheus");
  await mkdir(dir, { recursive: true });
  const files = bigFiles(SERIES, FILES);
  let bytes = 0;
  for (const [name, text] of files) {
    await writeFile(join(dir, name), text);
    bytes += Buffer.byteLength(text);
  }
  notes.push(`${SERIES} series in ${FILES} files, ${(bytes / 1e6).toFixed(1)} MB of text`);
  const load = (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
  notes.push(`load average at start: ${load} (2 cores shared with other work)`);

  let nodeExporter: Running | undefined;
  let ours: ChildProcess | undefined;
  let gateway: Running | undefined;
  try {
    // 2. Both servers on the same directory.
    nodeExporter = await startNodeExporter(dir);
    const port = await freePort();
    await mkdir(join(work, "buildpod"), { recursive: true });
    ours = spawn(
      process.execPath,
      [...NODE_FLAGS, BUNDLE, "--root", root, "--listen", `127.0.0.1:${port}`],
      {
        env: {
          PATH: process.env.PATH ?? "",
          BUILDPOD_LIFECYCLE_DIR: join(work, "buildpod"),
          BUILDPOD_LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    const oursUrl = `http://127.0.0.1:${port}/metrics`;
    const theirsUrl = `${nodeExporter.url}/metrics`;
    const readyStarted = performance.now();
    for (;;) {
      try {
        const text = await scrapeText(oursUrl);
        if (text.includes(`job_metric_${String(FILES - 1).padStart(2, "0")}{`)) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    notes.push(
      `metrics-exporter start to first full scrape: ${Math.round(performance.now() - readyStarted)} ms`,
    );

    // 3. Scrape latency, alternating so that load changes hit both alike.
    const theirs: number[] = [];
    const oursMs: number[] = [];
    const oursPlain: number[] = [];
    await scrapeMs(theirsUrl);
    await scrapeMs(oursUrl);
    for (let i = 0; i < 5; i++) {
      theirs.push(await scrapeMs(theirsUrl));
      for (let k = 0; k < 4; k++) oursMs.push(await scrapeMs(oursUrl));
      oursPlain.push(await scrapeMs(oursUrl, { accept: "text/plain;version=0.0.4" }));
    }
    const theirsMedian = median(theirs);
    metrics.push({
      name: "node_exporter scrape latency (reference)",
      value: Math.round(theirsMedian),
      unit: "ms",
      note: "median of 5, gzip",
    });
    metrics.push({
      name: "metrics-exporter scrape latency",
      value: Math.round(median(oursMs) * 10) / 10,
      unit: "ms",
      goal: { op: "<=", value: Math.round(theirsMedian * 0.1) },
      note: "median of 20, gzip; goal 0.1 x node_exporter's in this run",
    });
    metrics.push({
      name: "metrics-exporter scrape latency, uncompressed",
      value: Math.round(median(oursPlain) * 10) / 10,
      unit: "ms",
      note: "median of 5",
    });

    // 4. A changed file is visible in the next scrape.
    const visible: number[] = [];
    for (let round = 1; round <= 5; round++) {
      const marker = `bench_change_marker ${round}`;
      const text = `${files.get("file07.prom")}# TYPE bench_change_marker gauge\n${marker}\n`;
      const renamed = performance.now();
      await writeAtomic(join(dir, "file07.prom"), text);
      // Poll every 50 ms like an eager scraper; a tight loop would only compete for the CPU.
      for (;;) {
        if ((await scrapeText(oursUrl)).includes(`${marker}\n`)) break;
        if (performance.now() - renamed > 30_000) throw new Error("a change never showed up");
        await new Promise((r) => setTimeout(r, 50));
      }
      visible.push(performance.now() - renamed);
    }
    metrics.push({
      name: "metrics-exporter change visible in scrape",
      value: Math.round(Math.max(...visible)),
      unit: "ms",
      goal: { op: "<=", value: 1000 },
      note: `worst of 5 (median ${Math.round(median(visible))} ms)`,
    });

    // 5. Peak memory of each process over the whole run so far.
    const theirsRss = await peakRssMiB(nodeExporter.process.pid as number);
    const oursRss = await peakRssMiB(ours.pid as number);
    metrics.push({
      name: "node_exporter peak RSS (reference)",
      value: Math.round(theirsRss),
      unit: "MiB",
    });
    metrics.push({
      name: "metrics-exporter peak RSS",
      value: Math.round(oursRss),
      unit: "MiB",
      goal: { op: "<=", value: Math.round(theirsRss / 2) },
      note: "goal 0.5 x node_exporter's in this run",
    });

    // 6. Parse rate, in this process.
    const rates: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      let n = 0;
      for (const [name, text] of files) {
        for (const f of parseExposition(text, name).families) n += f.samples.length;
      }
      rates.push(n / ((performance.now() - started) / 1000));
    }
    metrics.push({
      name: "parse rate",
      value: Math.round(median(rates)),
      unit: "series/s",
      note: "median of 3",
    });

    // 7. A push of 100,000 series to the real Pushgateway.
    gateway = await startPushgateway();
    const families = [...files.values()]
      .slice(0, FILES / 2)
      .flatMap((text, i) => parseExposition(text, `push-${i}`).families);
    const body = renderText(families, { timestamps: false });
    const client = new PushClient({
      url: gateway.url,
      job: "bench",
      grouping: [["step", "a/b"]],
      timeoutMs: 60_000,
    });
    const pushes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const result = await client.put(body);
      if (!result.ok) throw new Error(`push failed: ${result.reason}`);
      pushes.push(performance.now() - started);
    }
    await client.close();
    metrics.push({
      name: "push of 100,000 series to the Pushgateway",
      value: Math.round(median(pushes)),
      unit: "ms",
      note: `median of 3, ${(Buffer.byteLength(body) / 1e6).toFixed(1)} MB; the issue measured 700 ms for the gateway alone`,
    });
  } finally {
    ours?.kill("SIGTERM");
    await nodeExporter?.stop();
    await gateway?.stop();
    await rm(work, { recursive: true, force: true });
  }

  for (const m of metrics)
    console.log(
      `${m.name}: ${m.value} ${m.unit}${m.goal ? ` (goal ${m.goal.op} ${m.goal.value})` : ""}`,
    );
  await writeBenchReport({ bench: "metrics-exporter", metrics, notes });
}

await main();
