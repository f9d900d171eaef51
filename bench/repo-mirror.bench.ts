/**
 * repo-mirror (issue 3): what a cache hit saves over a cold clone, and how close our checkout
 * comes to the best git can do by hand, with origin behind a simulated wide-area link.
 *
 * One run measures, each into a fresh directory (nothing large is deleted between timed runs,
 * see the toolchain notes on inode reuse), medians of BENCH_RUNS (default 3):
 * - cold: `git clone` from origin over the link (what a job without a cache pays);
 * - hit, dissociate and reference: the `repo-mirror checkout` bundle with a fresh mirror;
 * - by hand: `git clone --reference <mirror> [--dissociate]` plus checkout (the limit),
 *   and a local `git clone --no-hardlinks <mirror>` plus checkout (the limit of our method);
 * - ahead: the checkout when origin is 10 commits ahead of the mirror;
 * - miss: one `repo-mirror checkout` without a mirror, and the `sync` that creates it.
 * Every checkout uses `checkout.workers` = CPUs, ours and the hand-run ones alike.
 *
 * The repository: BENCH_RM_FILES (50000) files, BENCH_RM_COMMITS (20000) commits,
 * BENCH_RM_FILE_BYTES (4096) average bytes per file; generated once into .bench/repo-mirror/.
 * The link: BENCH_RM_MBIT (100) and BENCH_RM_RTT_MS (20). Needs root for the namespaces.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { buildBundle, findBundles } from "../scripts/build.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";
import { appendCommits, synthParams, synthRepo } from "./lib/repo-mirror-synth.ts";
import { openWan } from "./lib/repo-mirror-wan.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const log = (s: string) => console.log(s);

/** Runs a command to completion and returns its wall time in ms; throws on failure. */
function timed(argv: string[], cwd?: string): number {
  const start = performance.now();
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    cwd,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = performance.now() - start;
  if (r.status !== 0)
    throw new Error(
      `${argv.join(" ")} failed (${r.status}): ${(r.stderr || r.stdout).slice(-2000)}`,
    );
  return ms;
}

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync("git", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

function packBytes(gitDir: string): number {
  const dir = path.join(gitDir, "objects", "pack");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".pack"))
    .reduce((sum, f) => sum + statSync(path.join(dir, f)).size, 0);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const params = synthParams();
  const base = await synthRepo(path.join(ROOT, ".bench", "repo-mirror"), params, log);
  const work = mkdtempSync(path.join(tmpdir(), "buildpod-repo-mirror-bench-"));
  const serve = path.join(work, "serve");
  mkdirSync(serve);
  // Origin is a hard-linked copy of the cached repository: instant, and the "ahead" commits
  // later land in the copy only. Git never rewrites an object file in place.
  const origin = path.join(serve, "origin.git");
  const copied = spawnSync("cp", ["-al", base, origin]);
  if (copied.status !== 0) throw new Error(`could not copy ${base}: ${copied.stderr}`);
  const tip = git(origin, "rev-parse", "refs/heads/main");
  const pack = packBytes(origin);
  log(
    `repository: ${params.files} files, ${params.commits} commits, pack ${(pack / 2 ** 20).toFixed(0)} MiB, tip ${tip.slice(0, 12)}`,
  );

  const spec = findBundles().find((b) => b.name === "repo-mirror");
  if (!spec) throw new Error("containers/repo-mirror has no src/main.ts");
  const built = await buildBundle(spec, { version: "bench" });
  if (!built.ok)
    throw new Error(`could not bundle repo-mirror: ${built.errors.map((e) => e.text).join("; ")}`);

  const wan = await openWan({
    serve,
    rateMbit: Number(process.env.BENCH_RM_MBIT ?? 100),
    rttMs: Number(process.env.BENCH_RM_RTT_MS ?? 20),
    log,
  });
  log(`link: ${wan.description}`);
  // An interrupted run still removes its namespaces ("exit" handlers do not run on signals).
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      wan.close();
      process.exit(130);
    });
  }
  const url = `${wan.base}/origin.git`;
  const inClient = (argv: string[]) => [...wan.client, ...argv];
  const rm = (args: string[]) => inClient([process.execPath, ...NODE_FLAGS, spec.outfile, ...args]);
  const cache = path.join(work, "cache");
  const runs = path.join(work, "runs");
  mkdirSync(runs);
  let n = 0;
  const fresh = (label: string) => path.join(runs, `${label}-${++n}`);
  const workers = ["-c", "checkout.workers=0"];
  const notes: string[] = [
    `link: ${wan.description}`,
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on the machine's CPUs`,
  ];

  try {
    const syncMs = timed(rm(["sync", "--cache", cache, "--lifecycle-dir", work, url]));
    log(`sync (creates the mirror over the link): ${seconds(syncMs)}`);
    const mirror = path.join(
      cache,
      "v1",
      "mirrors",
      readdirSync(path.join(cache, "v1", "mirrors"))[0] as string,
    );

    const variants: Record<string, () => number> = {
      "cold git clone": () =>
        timed(inClient(["git", ...workers, "clone", "--quiet", "--", url, fresh("cold")])),
      "hit dissociate": () =>
        timed(
          rm([
            "checkout",
            "--repo",
            url,
            "--commit",
            tip,
            "--ref",
            "main",
            "--cache",
            cache,
            "--dest",
            fresh("hit-d"),
            "--mode",
            "dissociate",
            "--lifecycle-dir",
            work,
          ]),
        ),
      "hit reference": () =>
        timed(
          rm([
            "checkout",
            "--repo",
            url,
            "--commit",
            tip,
            "--ref",
            "main",
            "--cache",
            cache,
            "--dest",
            fresh("hit-r"),
            "--mode",
            "reference",
            "--lifecycle-dir",
            work,
          ]),
        ),
      "by hand --reference": () => {
        const d = fresh("hand-r");
        return (
          timed(
            inClient([
              "git",
              "clone",
              "--quiet",
              "--no-checkout",
              "--reference",
              mirror,
              "--",
              url,
              d,
            ]),
          ) + timed(["git", ...workers, "-C", d, "checkout", "--quiet", "--detach", tip])
        );
      },
      "by hand --reference --dissociate": () => {
        const d = fresh("hand-d");
        return (
          timed(
            inClient([
              "git",
              "clone",
              "--quiet",
              "--no-checkout",
              "--reference",
              mirror,
              "--dissociate",
              "--",
              url,
              d,
            ]),
          ) + timed(["git", ...workers, "-C", d, "checkout", "--quiet", "--detach", tip])
        );
      },
      "by hand local copy": () => {
        const d = fresh("hand-l");
        return (
          timed(["git", "clone", "--quiet", "--no-checkout", "--no-hardlinks", "--", mirror, d]) +
          timed(["git", ...workers, "-C", d, "checkout", "--quiet", "--detach", tip])
        );
      },
    };
    const times: Record<string, number[]> = Object.fromEntries(
      Object.keys(variants).map((k) => [k, [] as number[]]),
    );
    // Round-robin, so that a slow patch of the machine spreads over every variant.
    for (let r = 0; r < RUNS; r++) {
      for (const [name, fn] of Object.entries(variants)) {
        const ms = fn();
        times[name]?.push(ms);
        log(`  run ${r + 1}/${RUNS} ${name}: ${seconds(ms)}`);
      }
    }
    const missMs = timed(
      rm([
        "checkout",
        "--repo",
        url,
        "--commit",
        tip,
        "--ref",
        "main",
        "--cache",
        path.join(work, "no-cache"),
        "--dest",
        fresh("miss"),
        "--lifecycle-dir",
        work,
      ]),
    );
    log(`  miss (repo-mirror without a mirror): ${seconds(missMs)}`);

    await appendCommits(origin, 10, 7);
    const ahead = git(origin, "rev-parse", "refs/heads/main");
    const aheadTimes: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      aheadTimes.push(
        timed(
          rm([
            "checkout",
            "--repo",
            url,
            "--commit",
            ahead,
            "--ref",
            "main",
            "--cache",
            cache,
            "--dest",
            fresh("ahead"),
            "--lifecycle-dir",
            work,
          ]),
        ),
      );
      log(`  run ${r + 1}/${RUNS} ahead by 10 commits: ${seconds(aheadTimes.at(-1) as number)}`);
    }

    const m = (name: string) => median(times[name] as number[]);
    const cold = m("cold git clone");
    const hitD = m("hit dissociate");
    const hitR = m("hit reference");
    const handR = m("by hand --reference");
    const handD = m("by hand --reference --dissociate");
    const handL = m("by hand local copy");
    const note = `median of ${RUNS}`;
    const metrics: BenchMetric[] = [
      { name: "cold git clone over the link", value: Math.round(cold), unit: "ms", note },
      {
        name: "checkout, cache hit, dissociate (default)",
        value: Math.round(hitD),
        unit: "ms",
        note,
      },
      { name: "checkout, cache hit, reference", value: Math.round(hitR), unit: "ms", note },
      { name: "by hand: clone --reference + checkout", value: Math.round(handR), unit: "ms", note },
      {
        name: "by hand: clone --reference --dissociate + checkout",
        value: Math.round(handD),
        unit: "ms",
        note,
      },
      {
        name: "by hand: local clone --no-hardlinks + checkout",
        value: Math.round(handL),
        unit: "ms",
        note,
      },
      {
        name: "checkout, origin 10 commits ahead of the mirror",
        value: Math.round(median(aheadTimes)),
        unit: "ms",
        note,
      },
      {
        name: "checkout, cache miss (clone from origin)",
        value: Math.round(missMs),
        unit: "ms",
        note: "one run",
      },
      {
        name: "sync creating the mirror over the link",
        value: Math.round(syncMs),
        unit: "ms",
        note: "one run",
      },
      {
        name: "hit reference / by hand --reference",
        value: round(hitR / handR),
        unit: "x",
        goal: { op: "<=", value: 1.15 },
      },
      {
        name: "hit dissociate / by hand --reference --dissociate",
        value: round(hitD / handD),
        unit: "x",
        goal: { op: "<=", value: 1.15 },
      },
      {
        name: "hit dissociate (standalone) / by hand --reference",
        value: round(hitD / handR),
        unit: "x",
        goal: { op: "<=", value: 1.3 },
      },
      {
        name: "cold clone / hit dissociate",
        value: round(cold / hitD),
        unit: "x",
        goal: { op: ">=", value: 5 },
      },
      {
        name: "hit dissociate / by hand local copy (our method's limit)",
        value: round(hitD / handL),
        unit: "x",
      },
    ];
    notes.push(
      `repository: ${params.files} files, ${params.commits} commits, pack ${(pack / 2 ** 20).toFixed(0)} MiB`,
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    if (!wan.simulated)
      notes.push("NOT over a simulated link: the cold-clone ratio understates the cache's value");
    console.log("");
    for (const x of metrics) {
      const goal = x.goal ? `   goal ${x.goal.op} ${x.goal.value}` : "";
      console.log(`${x.name.padEnd(58)} ${String(x.value).padStart(8)} ${x.unit}${goal}`);
    }
    await writeBenchReport({ bench: "repo-mirror", metrics, notes });
  } finally {
    wan.close();
    // About a million files: minutes on a busy disk, but the next benchmark should not pay it.
    log(`removing ${work} ...`);
    rmSync(work, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
