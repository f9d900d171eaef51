/**
 * What `agent-injector inject` adds to every job: it is the first init container, so the job
 * waits for all of it. Issue 7 sets no number for it; these are reference figures, with the
 * start-up goal of issue 2 (300 ms) as the yardstick a reader can hold them against.
 *
 * The bundle runs against the fake agent API on loopback (so the token check is one local HTTP
 * round trip) with a random 50 MiB file as the agent, about the size of a real release:
 * - first inject: a fresh bin directory and lifecycle dir each run (checksum, copy, fsync,
 *   rename, env files);
 * - re-run: the same pod again, where the binary is already in place (checksums only);
 * - `--no-install-agent`: token check and env files alone.
 * BENCH_RUNS (default 7) runs each; the median is reported. Nothing large is deleted between
 * timed runs (see shared/reference/toolchain.md on inode reuse); the work dir goes at the end.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { type BenchMetric, median, writeBenchReport } from "../scripts/bench.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";
import { startFakeBuildkite } from "../test/fakes/buildkite-agent-api.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const BUNDLE = path.join(ROOT, "containers", "agent-injector", "dist", "agent-injector.mjs");
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const AGENT_MIB = 50;

spawnSync(process.execPath, [path.join(ROOT, "scripts", "build.ts"), "agent-injector"], {
  cwd: ROOT,
  stdio: "inherit",
});
const bk = await startFakeBuildkite({ token: "bkaj_bench-token" });
const work = mkdtempSync(path.join(tmpdir(), "buildpod-agent-injector-bench-"));
const image = path.join(work, "image");
mkdirSync(image);
const agent = path.join(image, "buildkite-agent");
writeFileSync(agent, randomBytes(AGENT_MIB * 1024 * 1024), { mode: 0o755 });
writeFileSync(path.join(image, "VERSION"), "3.137.0\n");

// Asynchronous: the fake API runs in this process and must answer while inject waits on it.
const run = promisify(execFile);

async function inject(pod: string, extra: string[] = []): Promise<number> {
  const started = performance.now();
  await run(process.execPath, [...NODE_FLAGS, BUNDLE, "inject", ...extra], {
    env: {
      PATH: process.env.PATH,
      BUILDPOD_LIFECYCLE_DIR: path.join(pod, "buildpod"),
      AGENT_INJECTOR_DEST: path.join(pod, "bin"),
      AGENT_INJECTOR_AGENT_BINARY: agent,
      BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
      BUILDKITE_JOB_ID: bk.jobId,
      BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
      BUILDKITE_BRANCH: "main",
    },
  });
  return performance.now() - started;
}

const first: number[] = [];
const rerun: number[] = [];
const envOnly: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const pod = path.join(work, `pod-${i}`);
  first.push(await inject(pod));
  rerun.push(await inject(pod));
  envOnly.push(await inject(path.join(work, `env-only-${i}`), ["--no-install-agent"]));
}
await bk.close();
rmSync(work, { recursive: true, force: true });

const note = `median of ${RUNS} runs, wall time from spawn to exit`;
const metrics: BenchMetric[] = [
  {
    name: `inject, first copy of a ${AGENT_MIB} MiB agent`,
    value: median(first),
    unit: "ms",
    note,
  },
  { name: "inject, re-run with the agent in place", value: median(rerun), unit: "ms", note },
  {
    name: "inject --no-install-agent (token check, env files)",
    value: median(envOnly),
    unit: "ms",
    note,
  },
];
for (const m of metrics) console.log(`${m.name}: ${m.value.toFixed(0)} ${m.unit}`);
await writeBenchReport({
  bench: "agent-injector",
  metrics,
  notes: [
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  ],
});
