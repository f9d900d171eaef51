/**
 * Start-up time and RSS of every container bundle, next to `node -e 0` measured in the same
 * run. Init containers run one after another before every job and each sidecar starts with
 * the workload, so this cost is paid on every job. Goals (issue 2): start-up at most 300 ms,
 * idle RSS at most 60 MiB.
 *
 * For each bundle in `containers/*` and `examples/*` (built fresh first):
 * - `--version`: wall time from spawn to exit. Every module of the bundle is loaded and
 *   evaluated, so this is the floor under any real start; also measured with a warm
 *   NODE_COMPILE_CACHE, which an image could ship.
 * - RSS after start-up: VmRSS (and the peak, VmHWM) of a `--version` run as it exits.
 * - a run of the default command in a throwaway setup (temporary lifecycle directory, health
 *   server on a free loopback port): time to the first line on stdout, time until `/readyz`
 *   answers 200 when the program serves it, and VmRSS once it has idled for a second. A
 *   program that exits before that (an init container without work, a placeholder) is noted.
 *
 * BENCH_RUNS (default 10) sets the runs per median, BENCH_IDLE_MS (default 1000) the idle wait.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { type BundleSpec, findBundles } from "../scripts/build.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 1000);
const STARTUP_GOAL = { op: "<=", value: 300 } as const;
const RSS_GOAL = { op: "<=", value: 60 } as const;

const work = mkdtempSync(path.join(tmpdir(), "buildpod-startup-"));

// Preloaded into the RSS runs: copies /proc/self/status to a file as the process exits, which
// catches even a program that is done in 50 ms.
const statusHook = path.join(work, "status-hook.cjs");
writeFileSync(
  statusHook,
  'process.on("exit", () => { const fs = require("node:fs"); ' +
    'fs.writeFileSync(process.env.BENCH_STATUS_FILE, fs.readFileSync("/proc/self/status")); });\n',
);

/** Spawns node with some arguments and resolves with the wall time until it exited. */
async function timeToExit(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: work, env, stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", () => resolve());
  });
  return performance.now() - started;
}

/** VmRSS and VmHWM in MiB from a /proc/<pid>/status text. */
function parseStatus(text: string): { rss: number; peak: number } {
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** RSS of a node process at the moment it exits, median over a few runs. */
function rssAtExit(args: string[]): { rss: number; peak: number } {
  const file = path.join(work, "status.txt");
  const samples = [1, 2, 3].map(() => {
    spawnSync(process.execPath, ["--require", statusHook, ...args], {
      cwd: work,
      env: { ...process.env, BENCH_STATUS_FILE: file },
      stdio: "ignore",
    });
    return parseStatus(readFileSync(file, "utf8"));
  });
  return { rss: median(samples.map((s) => s.rss)), peak: median(samples.map((s) => s.peak)) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

interface IdleRun {
  firstLineMs?: number;
  readyMs?: number;
  idleRssMiB?: number;
  /** Why the run ended before it idled: exit code and first line of stderr. */
  exited?: string;
}

/** True once GET /readyz answers 200; false while nothing listens or it is not ready. */
async function isReady(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
      signal: AbortSignal.timeout(500),
    });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts the bundle's default command and watches it: the first stdout line, /readyz, then
 * the RSS after it idled. Stops it with SIGTERM (a sidecar's ordinary end) afterwards.
 */
async function idleRun(spec: BundleSpec): Promise<IdleRun> {
  const port = await freePort();
  const lifecycleDir = mkdtempSync(path.join(work, `${spec.name}-`));
  const started = performance.now();
  const child = spawn(process.execPath, [spec.outfile], {
    cwd: lifecycleDir,
    env: {
      ...process.env,
      BUILDPOD_LIFECYCLE_DIR: lifecycleDir,
      BUILDPOD_HTTP_PORT: String(port),
      BUILDPOD_HTTP_HOST: "127.0.0.1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: IdleRun = {};
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    if (run.firstLineMs === undefined && chunk.includes(10)) {
      run.firstLineMs = performance.now() - started;
    }
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  let exitCode: number | null | undefined;
  exited.then((code) => {
    exitCode = code;
  });

  // Wait for readiness (or, for a program without the server, its first line), at most 10 s.
  const deadline = performance.now() + 10_000;
  while (exitCode === undefined && performance.now() < deadline) {
    if (await isReady(port)) {
      run.readyMs = performance.now() - started;
      break;
    }
    if (run.firstLineMs !== undefined && performance.now() - started > run.firstLineMs + 2000) {
      break; // logging but serving no /readyz: the health server is not part of this program
    }
    await sleep(5);
  }
  await sleep(IDLE_MS);
  if (exitCode === undefined) {
    run.idleRssMiB = parseStatus(readFileSync(`/proc/${child.pid}/status`, "utf8")).rss;
  } else {
    const line = stderr.split("\n").find((l) => l.trim() !== "") ?? "";
    run.exited = `exited ${exitCode} before idling${line ? `: ${line.trim().slice(0, 120)}` : ""}`;
  }
  await stop(child);
  return run;
}

/** Runs `pnpm run build`'s script so the figures belong to the current source. */
function buildBundles(): string[] {
  const build = spawnSync(process.execPath, [path.join(ROOT, "scripts/build.ts")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  process.stdout.write(build.stdout);
  process.stderr.write(build.stderr);
  return build.status === 0 ? [] : ["the build failed for some bundles; only built ones ran"];
}

async function main(): Promise<void> {
  const notes = buildBundles();
  const specs = findBundles(ROOT).filter((s) => existsSync(s.outfile));
  notes.push(
    `node ${process.version}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} at start`,
  );

  // Interleave the programs run by run, so a burst of load elsewhere hits all of them alike.
  const cache = path.join(work, "compile-cache");
  for (const spec of specs) await timeToExit([spec.outfile, "--version"], cacheEnv(cache));
  const times = new Map<string, { cold: number[]; warm: number[] }>();
  const baseline: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    baseline.push(await timeToExit(["-e", "0"]));
    for (const spec of specs) {
      const t = times.get(spec.name) ?? { cold: [], warm: [] };
      t.cold.push(await timeToExit([spec.outfile, "--version"]));
      t.warm.push(await timeToExit([spec.outfile, "--version"], cacheEnv(cache)));
      times.set(spec.name, t);
    }
  }

  const note = `median of ${RUNS}`;
  const baseRss = rssAtExit(["-e", "0"]);
  const metrics: BenchMetric[] = [
    { name: "node -e 0: exit", value: median(baseline), unit: "ms", note },
    { name: "node -e 0: RSS at exit", value: baseRss.rss, unit: "MiB" },
  ];
  for (const spec of specs) {
    const t = times.get(spec.name);
    const rss = rssAtExit([spec.outfile, "--version"]);
    const idle = await idleRun(spec);
    metrics.push(
      {
        name: `${spec.name}: --version`,
        value: median(t?.cold ?? []),
        unit: "ms",
        goal: STARTUP_GOAL,
        note,
      },
      {
        name: `${spec.name}: --version, warm compile cache`,
        value: median(t?.warm ?? []),
        unit: "ms",
        note,
      },
      { name: `${spec.name}: RSS after start-up`, value: rss.rss, unit: "MiB", goal: RSS_GOAL },
      { name: `${spec.name}: peak RSS during start-up`, value: rss.peak, unit: "MiB" },
    );
    if (idle.firstLineMs !== undefined) {
      metrics.push({
        name: `${spec.name}: to first log line`,
        value: idle.firstLineMs,
        unit: "ms",
        goal: STARTUP_GOAL,
      });
    }
    if (idle.readyMs !== undefined) {
      metrics.push({
        name: `${spec.name}: to /readyz 200`,
        value: idle.readyMs,
        unit: "ms",
        goal: STARTUP_GOAL,
      });
    }
    if (idle.idleRssMiB !== undefined) {
      metrics.push({
        name: `${spec.name}: idle RSS`,
        value: idle.idleRssMiB,
        unit: "MiB",
        goal: RSS_GOAL,
      });
    }
    if (idle.exited) notes.push(`${spec.name}: default command ${idle.exited}`);
  }

  const file = await writeBenchReport({ bench: "startup", metrics, notes });
  console.log(`startup: ${metrics.length} figures written to ${path.relative(ROOT, file)}`);
}

function cacheEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, NODE_COMPILE_CACHE: dir };
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
