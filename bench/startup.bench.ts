/**
 * Start-up time and RSS of every container bundle, next to `node -e 0` measured in the same
 * run. Init containers run one after another before every job and each sidecar starts with
 * the workload, so this cost is paid on every job. Goals (issue 2): start-up at most 300 ms,
 * idle RSS at most 60 MiB, measured as the images run (with the compile cache they ship).
 *
 * Every bundle runs as its image runs it: `node` with the flags of scripts/node-flags.ts.
 *
 * For each bundle in `containers/*` and `examples/*` (built fresh first):
 * - `--version`: wall time from spawn to exit. Every module of the bundle is loaded and
 *   evaluated, so this is the floor under any real start. Also measured with a warm
 *   NODE_COMPILE_CACHE, as the images ship one (docs/images.md).
 * - RSS after start-up: VmRSS of a `--version` run as it exits, and the CPU time it used, a
 *   figure that a busy machine distorts much less than wall time.
 * - a real start of each command in a throwaway setup (SCENARIOS below: temporary lifecycle
 *   directory and volumes, health server on a free loopback port, no traffic beyond
 *   loopback): time to the first line on stdout, time until `/readyz` answers 200, and for
 *   sidecars the VmRSS once they have idled for a second, without a compile cache and with a
 *   warm one. Then SIGTERM, a sidecar's usual end. For comparison, each sidecar's idle RSS
 *   also without those node flags.
 *
 * BENCH_RUNS (default 10) sets the runs per median of `--version`, BENCH_START_RUNS (default 3)
 * those of the real starts, BENCH_IDLE_MS (default 1000) the idle wait.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { type BundleSpec, findBundles } from "../scripts/build.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const START_RUNS = Number(process.env.BENCH_START_RUNS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 1000);
const STARTUP_GOAL = { op: "<=", value: 300 } as const;
const RSS_GOAL = { op: "<=", value: 60 } as const;

// Short names, since a pod's paths are short (`/artifacts`, `/buildpod`): start-up runs node:path
// over every watched path, and with paths of 50 characters and more that is enough work for V8
// to optimise its functions, which pages in the optimising compiler's code (6 MiB of RSS)
// for the artifact-uploader, a cost that a pod never has at rest.
const work = mkdtempSync(path.join(tmpdir(), "bp-"));

// ---- what a real start of each program looks like ---------------------------------------------

interface Scenario {
  /**
   * Arguments after the bundle. `dir` is a fresh directory, also the lifecycle directory;
   * `port` a free loopback port besides the health server's, for a program's own listener.
   */
  args(dir: string, port: number): string[];
  /** A sidecar keeps running until told the workload finished; an init container exits. */
  sidecar: boolean;
  /** Prepares `dir` before the start (not timed). */
  setup?(dir: string): void;
}

/** The smallest real work of each command, all of it local. */
const SCENARIOS: Record<string, Scenario[]> = {
  "repo-mirror": [
    {
      sidecar: false,
      setup: (dir) => makeRepository(path.join(dir, "origin")),
      args: (dir) => [
        "checkout",
        `--repo=file://${dir}/origin`,
        "--commit=HEAD",
        "--ref=main",
        `--dest=${dir}/workspace`,
        `--cache=${dir}/cache`,
      ],
    },
  ],
  "artifact-downloader": [
    {
      sidecar: false,
      setup: (dir) => mkdirSync(path.join(dir, "store"), { recursive: true }),
      args: (dir) => [`--store=dir:${dir}/store`, "--query=*", `--dest=${dir}/artifacts-imported`],
    },
  ],
  "agent-injector": [
    {
      sidecar: false,
      setup: (dir) => writeFileSync(path.join(dir, "token"), "bkaj_bench\n"),
      args: (dir) => [
        "inject",
        `--token-file=${dir}/token`,
        "--job-id=01890000-0000-0000-0000-000000000000",
        "--no-install-agent",
        "--no-verify-token",
      ],
    },
    { sidecar: true, args: () => ["run", "--poll-interval=0"] },
  ],
  "log-exporter": [
    {
      sidecar: true,
      setup: (dir) => mkdirSync(path.join(dir, "logs")),
      args: (dir) => [`--logs=${dir}/logs`],
    },
  ],
  "artifact-uploader": [
    {
      sidecar: true,
      setup: (dir) => mkdirSync(path.join(dir, "artifacts")),
      args: (dir) => [`--root=${dir}/artifacts`, `--store=dir:${dir}/store`],
    },
  ],
  "metrics-exporter": [
    {
      sidecar: true,
      setup: (dir) => mkdirSync(path.join(dir, "metrics")),
      args: (dir, port) => [`--root=${dir}/metrics`, `--listen=127.0.0.1:${port}`],
    },
  ],
  "custom-sidecar": [
    {
      sidecar: true,
      setup: (dir) => mkdirSync(path.join(dir, "reports")),
      // Port 9 (discard) on loopback: nothing is posted before the workload finishes.
      args: (dir) => [`--root=${dir}/reports`, "--endpoint=http://127.0.0.1:9/summary"],
    },
  ],
};

function makeRepository(dir: string): void {
  const git = (...args: string[]) =>
    spawnSync("git", ["-c", "user.name=bench", "-c", "user.email=bench@localhost", ...args], {
      cwd: dir,
      stdio: "ignore",
    });
  mkdirSync(dir, { recursive: true });
  git("init", "-q", "-b", "main");
  writeFileSync(path.join(dir, "README"), "bench\n");
  git("add", "README");
  git("commit", "-q", "-m", "bench");
}

// ---- measuring --------------------------------------------------------------------------------

// Preloaded into the RSS runs: as the process exits, saves /proc/self/status and the CPU time
// it used (all threads), which catches even a program that is done in 50 ms. CPU time moves far
// less with the machine's load than wall time does, so it is reported beside it.
const statusHook = path.join(work, "status-hook.cjs");
writeFileSync(
  statusHook,
  'process.on("exit", () => { const fs = require("node:fs"); const u = process.resourceUsage(); ' +
    "fs.writeFileSync(process.env.BENCH_STATUS_FILE, JSON.stringify({ " +
    'status: fs.readFileSync("/proc/self/status", "utf8"), ' +
    "cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 })); });\n",
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

/** RSS and CPU time of a node process at the moment it exits, medians of five runs. */
function atExit(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { rss: number; peak: number; cpuMs: number } {
  const file = path.join(work, "status.json");
  const samples = [1, 2, 3, 4, 5].map(() => {
    spawnSync(process.execPath, ["--require", statusHook, ...args], {
      cwd: work,
      env: { ...env, BENCH_STATUS_FILE: file },
      stdio: "ignore",
    });
    const saved = JSON.parse(readFileSync(file, "utf8")) as { status: string; cpuMs: number };
    return { ...parseStatus(saved.status), cpuMs: saved.cpuMs };
  });
  const of = (key: "rss" | "peak" | "cpuMs") => median(samples.map((s) => s[key]));
  return { rss: of("rss"), peak: of("peak"), cpuMs: of("cpuMs") };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
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

interface Start {
  firstLineMs?: number;
  readyMs?: number;
  idleRssMiB?: number;
  /** Set when the program ended other than expected: its exit code and first stderr line. */
  problem?: string;
}

/**
 * Starts one scenario and watches it: the first stdout line, /readyz, and for a sidecar the
 * RSS after it idled. A sidecar is then stopped with SIGTERM; an init container runs to its end.
 */
async function start(
  spec: BundleSpec,
  scenario: Scenario,
  cache?: string,
  nodeFlags: readonly string[] = NODE_FLAGS,
): Promise<Start> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(work, "s"));
  scenario.setup?.(dir);
  const args = scenario.args(dir, await freePort());
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, spec.outfile, ...args], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      BUILDPOD_LIFECYCLE_DIR: dir,
      BUILDPOD_HTTP_PORT: String(port),
      BUILDPOD_HTTP_HOST: "127.0.0.1",
      ...(cache ? { NODE_COMPILE_CACHE: cache } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const result: Start = {};
  let stderr = "";
  // The first log line: on stdout, or on stderr where a program keeps stdout for its output
  // (the log-exporter with no sinks file prints records there).
  const firstLine = (chunk: Buffer) => {
    if (result.firstLineMs === undefined && chunk.includes(10)) {
      result.firstLineMs = performance.now() - started;
    }
  };
  child.stdout?.on("data", firstLine);
  child.stderr?.on("data", (chunk: Buffer) => {
    firstLine(chunk);
    stderr += chunk.toString();
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on("exit", (code) => {
      exitCode = code;
      resolve();
    }),
  );

  // Poll /readyz until it answers, the program exits, or 10 s pass.
  const deadline = performance.now() + 10_000;
  while (exitCode === undefined && performance.now() < deadline) {
    if (await isReady(port)) {
      result.readyMs = performance.now() - started;
      break;
    }
    await sleep(5);
  }

  if (scenario.sidecar) {
    await sleep(IDLE_MS);
    if (exitCode === undefined) {
      result.idleRssMiB = parseStatus(readFileSync(`/proc/${child.pid}/status`, "utf8")).rss;
    }
    await stop(child);
  } else {
    await Promise.race([exited, sleep(60_000, undefined, { ref: false })]);
    await stop(child);
  }
  const expected = scenario.sidecar ? exitCode === null || exitCode === 0 : exitCode === 0;
  if (!expected || (scenario.sidecar && result.idleRssMiB === undefined)) {
    const line =
      stderr
        .split("\n")
        .find((l) => l.trim() !== "")
        ?.trim() ?? "";
    result.problem = `exited ${exitCode}${line ? `: ${line.slice(0, 160)}` : ""}`;
  }
  return result;
}

/**
 * Idle RSS of START_RUNS starts with the compile cache `cache`, after one start that fills it.
 */
async function warmIdleRss(
  spec: BundleSpec,
  scenario: Scenario,
  cache: string,
  nodeFlags: readonly string[],
): Promise<number[]> {
  await start(spec, scenario, cache, nodeFlags);
  const rss: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const idle = (await start(spec, scenario, cache, nodeFlags)).idleRssMiB;
    if (idle !== undefined) rss.push(idle);
  }
  return rss;
}

/** Runs the build script so the figures belong to the current source. */
function buildBundles(): string[] {
  const build = spawnSync(process.execPath, [path.join(ROOT, "scripts/build.ts")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  process.stdout.write(build.stdout);
  process.stderr.write(build.stderr);
  return build.status === 0 ? [] : ["the build failed for some bundles; only built ones ran"];
}

/** Where the runs "with a warm compile cache" keep it (filled by versionTimes' first runs). */
const withCache = { ...process.env, NODE_COMPILE_CACHE: path.join(work, "compile-cache") };

/** A bundle's `--version` as its image runs it. */
const version = (spec: BundleSpec) => [...NODE_FLAGS, spec.outfile, "--version"];

/** `--version` of every bundle, cold and with a warm compile cache, interleaved run by run. */
async function versionTimes(specs: BundleSpec[]) {
  for (const spec of specs) await timeToExit(version(spec), withCache);

  // Interleaved, so that a burst of load from elsewhere hits every program alike.
  const cold = new Map<string, number[]>();
  const warm = new Map<string, number[]>();
  const baseline: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    baseline.push(await timeToExit(["-e", "0"]));
    for (const spec of specs) {
      cold.set(spec.name, [...(cold.get(spec.name) ?? []), await timeToExit(version(spec))]);
      warm.set(spec.name, [
        ...(warm.get(spec.name) ?? []),
        await timeToExit(version(spec), withCache),
      ]);
    }
  }
  return { baseline, cold, warm };
}

/** `agent-injector inject` for a scenario naming its command, else the program's name. */
function scenarioLabel(name: string, scenario: Scenario): string {
  const first = scenario.args(".", 0)[0] ?? "";
  return first === "" || first.startsWith("-") ? name : `${name} ${first}`;
}

function metric(name: string, value: number, unit: string, extra: Partial<BenchMetric> = {}) {
  return { name, value, unit, ...extra };
}

async function main(): Promise<void> {
  const notes = buildBundles();
  const specs = findBundles(ROOT).filter((s) => existsSync(s.outfile));
  const load = loadavg().map((l) => l.toFixed(2));
  notes.push(`node ${process.version}; load average ${load.join(" ")} at start`);

  const times = await versionTimes(specs);
  const note = `median of ${RUNS}`;
  const base = atExit(["-e", "0"]);
  const metrics: BenchMetric[] = [
    metric("node -e 0: exit", median(times.baseline), "ms", { note }),
    metric("node -e 0: CPU time", base.cpuMs, "ms", { note: "median of 5" }),
    metric("node -e 0: RSS at exit", base.rss, "MiB"),
  ];
  // On a fresh install, the page cache may hold the just-written node binary in large folios,
  // and every page of the binary a process touches then maps a whole folio: about 25 MiB more
  // file-backed RSS for every process alike, which swamps the figures (seen on Linux 6.18).
  if (base.rss > 55) {
    notes.push(
      `node -e 0 holds ${base.rss.toFixed(0)} MiB (about 43 is usual): the node binary was probably written just now and sits in the page cache in large folios; as root, \`sync; echo 3 > /proc/sys/vm/drop_caches\` and run the bench again`,
    );
  }

  for (const spec of specs) {
    const exit = atExit(version(spec));
    const cached = atExit(version(spec), withCache);
    metrics.push(
      metric(`${spec.name} --version`, median(times.cold.get(spec.name) ?? []), "ms", {
        goal: STARTUP_GOAL,
        note,
      }),
      metric(
        `${spec.name} --version, warm compile cache`,
        median(times.warm.get(spec.name) ?? []),
        "ms",
        { note },
      ),
      metric(`${spec.name} --version CPU time`, exit.cpuMs, "ms", { note: "median of 5" }),
      metric(`${spec.name} --version CPU time, warm compile cache`, cached.cpuMs, "ms", {
        note: "median of 5",
      }),
      metric(`${spec.name} RSS after start-up`, exit.rss, "MiB", { goal: RSS_GOAL }),
      // The images ship a warm cache (images/Dockerfile), which spares the parser's memory.
      metric(`${spec.name} RSS after start-up, warm compile cache`, cached.rss, "MiB"),
    );

    for (const scenario of SCENARIOS[spec.name] ?? []) {
      const label = scenarioLabel(spec.name, scenario);
      const starts: Start[] = [];
      for (let i = 0; i < START_RUNS; i++) starts.push(await start(spec, scenario));
      const values = (pick: (s: Start) => number | undefined) =>
        starts.map(pick).filter((v): v is number => v !== undefined);
      const runs = `median of ${START_RUNS}`;
      const first = values((s) => s.firstLineMs);
      const ready = values((s) => s.readyMs);
      const idle = values((s) => s.idleRssMiB);
      if (first.length > 0) {
        metrics.push(
          metric(`${label}: to first log line`, median(first), "ms", {
            goal: STARTUP_GOAL,
            note: runs,
          }),
        );
      }
      if (ready.length > 0) {
        metrics.push(
          metric(`${label}: to /readyz 200`, median(ready), "ms", {
            goal: STARTUP_GOAL,
            note: runs,
          }),
        );
      }
      if (idle.length > 0) {
        metrics.push(
          metric(`${label}: idle RSS, no compile cache`, median(idle), "MiB", { note: runs }),
        );
      }
      if (scenario.sidecar) {
        // As the images run it, with the compile cache their build leaves (one start fills it):
        // the figure the goal is for.
        const warm = await warmIdleRss(spec, scenario, withCache.NODE_COMPILE_CACHE, NODE_FLAGS);
        if (warm.length > 0) {
          const note = `median of ${warm.length}`;
          metrics.push(
            metric(`${label}: idle RSS, warm compile cache`, median(warm), "MiB", {
              goal: RSS_GOAL,
              note,
            }),
          );
        }
        // The same without the image's node flags (its own compile cache: V8 keys it by them).
        const plain = await warmIdleRss(spec, scenario, path.join(work, "compile-cache-plain"), []);
        if (plain.length > 0) {
          const note = `median of ${plain.length}; node ${NODE_FLAGS.join(" ")} is what the images run`;
          metrics.push(
            metric(`${label}: idle RSS, warm compile cache, plain node`, median(plain), "MiB", {
              note,
            }),
          );
        }
      }
      const problem = starts.find((s) => s.problem)?.problem;
      if (problem) notes.push(`${label}: ${problem}`);
    }
    if (!SCENARIOS[spec.name])
      notes.push(`${spec.name}: no start scenario in bench/startup.bench.ts`);
  }

  const file = await writeBenchReport({ bench: "startup", metrics, notes });
  console.log(`startup: ${metrics.length} figures written to ${path.relative(ROOT, file)}`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
