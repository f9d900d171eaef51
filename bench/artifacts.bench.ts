/**
 * artifact-uploader and artifact-downloader (issue 4): throughput against the fake Buildkite
 * agent API on loopback, next to the limit the protocol allows on this machine.
 *
 * One run, each phase into a fresh directory (nothing large deleted between timed runs, see the
 * toolchain notes on inode reuse):
 * - data: 4 files of 256 MiB (random bytes) and 2,000 files of 10 KiB;
 * - ours: the uploader bundle uploads each set (the workload's marker is already there, so the
 *   run is one final sweep: start-up, scan, hash, create, transfer, state update), then the
 *   downloader bundle searches and downloads it (sha256 checked while streaming);
 * - limit: `sha1sum` and `sha256sum` of the same files plus one `curl` process doing the same
 *   transfers (form POSTs to the storage; GETs following the download redirect), reusing its
 *   connection; the limit's time is the sum of the three;
 * - memory: peak RSS (VmHWM) of each of our processes, and of a run moving one 1 GiB file.
 * The fake runs in this process; every transfer is real HTTP over 127.0.0.1. Large objects go
 * as single form uploads (the fake's multipart threshold is raised above 256 MiB) so that curl
 * and the uploader do exactly the same requests.
 *
 * Goals: large files at least 80 % of the limit's throughput each way; at least 1,000 small
 * files per second each way; peak RSS at most 128 MiB while moving a 1 GiB file.
 *
 * Besides wall-clock rates, which other load on a shared machine distorts, each of our runs
 * reports its CPU seconds (user + system, from /proc) and the fake's CPU seconds while serving
 * it: the fake runs in this process on the same cores, so its share bounds what any client
 * could reach here. Knobs for a quick run: ARTIFACTS_BENCH_SMALL (files, default 2000),
 * ARTIFACTS_BENCH_BIG_MIB (size of each of the 4 large files, default 256),
 * ARTIFACTS_BENCH_ONE_MIB (the memory run's file, default 1024).
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, open, rm, truncate, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { type BenchMetric, writeBenchReport } from "../scripts/bench.ts";
import { buildBundle, findBundles } from "../scripts/build.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";
import { type FakeBuildkite, startFakeBuildkite } from "../test/fakes/buildkite-agent-api.ts";

const MiB = 1024 ** 2;
const BIG = { count: 4, size: Number(process.env.ARTIFACTS_BENCH_BIG_MIB ?? 256) * MiB };
const SMALL = { count: Number(process.env.ARTIFACTS_BENCH_SMALL ?? 2000), size: 10 * 1024 };
const ONE = Number(process.env.ARTIFACTS_BENCH_ONE_MIB ?? 1024) * MiB;
const CLOCK_TICK_S = 0.01; // USER_HZ, 100 on Linux
const log = (s: string) => console.log(s);

interface Timed {
  ms: number;
  peakRssMiB: number;
  /** User + system CPU seconds of the process (as last polled, at most 20 ms before exit). */
  cpuS: number;
  /** CPU seconds this process (the fake) spent meanwhile. */
  fakeCpuS: number;
  code: number;
  output: string;
}

/** Runs a bundle with Node 24, polling its peak RSS (VmHWM) and CPU time until it exits. */
function runBundle(bundle: string, args: string[], env: Record<string, string>): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const fakeBefore = process.cpuUsage();
    const child = spawn(process.execPath, [...NODE_FLAGS, bundle, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    let peak = 0;
    let cpuS = 0;
    child.stdout.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      output += c.toString();
    });
    const poll = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, kb / 1024);
        // Fields 14 and 15 (utime, stime) follow the parenthesised command name.
        const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        cpuS = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_S;
      } catch {
        // exited between polls
      }
    }, 20);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearInterval(poll);
      const fake = process.cpuUsage(fakeBefore);
      const fakeCpuS = (fake.user + fake.system) / 1e6;
      resolve({
        ms: performance.now() - start,
        peakRssMiB: peak,
        cpuS,
        fakeCpuS,
        code: code ?? 1,
        output,
      });
    });
  });
}

/**
 * Runs a command to completion and returns its wall time in ms; throws on failure. Never
 * spawnSync: the fake serving curl lives in this process's event loop.
 */
function timed(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(performance.now() - start);
      else reject(new Error(`${argv.slice(0, 3).join(" ")} failed (${code}): ${err.slice(-2000)}`));
    });
  });
}

async function makeData(dir: string) {
  const big = path.join(dir, "big");
  const small = path.join(dir, "small");
  await mkdir(big, { recursive: true });
  await mkdir(small, { recursive: true });
  for (let i = 0; i < BIG.count; i++) {
    const fh = await open(path.join(big, `large-${i}.bin`), "w");
    for (let off = 0; off < BIG.size; off += 4 * MiB) await fh.write(randomBytes(4 * MiB));
    await fh.close();
  }
  for (let d = 0; d < SMALL.count / 100; d++) {
    await mkdir(path.join(small, `dir-${d}`));
    for (let i = 0; i < 100; i++) {
      await writeFile(path.join(small, `dir-${d}`, `file-${i}.txt`), randomBytes(SMALL.size));
    }
  }
  return { big, small };
}

function listFiles(root: string): string[] {
  const r = spawnSync("find", [root, "-type", "f"], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).sort();
}

/** The uploader bundle on `root` as job `jobId`, the workload already finished. */
async function upload(bundle: string, bk: FakeBuildkite, root: string, jobId: string) {
  const lifecycle = await mkdtemp(path.join(tmpdir(), "bench-art-lc-"));
  writeFileSync(path.join(lifecycle, "workload-finished"), "0");
  const r = await runBundle(bundle, [], {
    BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
    BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
    BUILDKITE_JOB_ID: jobId,
    BUILDPOD_LIFECYCLE_DIR: lifecycle,
    BUILDPOD_DRAIN_TIMEOUT: "10m",
    ARTIFACT_UPLOADER_ROOT: root,
  });
  await rm(lifecycle, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`uploader exited ${r.code}:\n${r.output.slice(-3000)}`);
  return r;
}

async function download(bundle: string, bk: FakeBuildkite, query: string, dest: string) {
  const r = await runBundle(bundle, ["--query", query, "--dest", dest], {
    BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
    BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
    BUILDKITE_BUILD_ID: bk.buildId,
    BUILDPOD_LIFECYCLE_DIR: dest,
    ARTIFACT_DOWNLOADER_PROGRESS_INTERVAL: "0",
  });
  if (r.code !== 0) throw new Error(`downloader exited ${r.code}:\n${r.output.slice(-3000)}`);
  return r;
}

/** Wall ms of a curl run and the fake's CPU seconds while serving it. */
interface CurlRun {
  ms: number;
  fakeCpuS: number;
}

async function curlRun(config: string): Promise<CurlRun> {
  const before = process.cpuUsage();
  const ms = await timed(["curl", "-K", config]);
  const fake = process.cpuUsage(before);
  await rm(config);
  return { ms, fakeCpuS: (fake.user + fake.system) / 1e6 };
}

/** One curl process POSTing every file as the form the batch template describes. */
async function curlUpload(bk: FakeBuildkite, root: string, files: string[]): Promise<CurlRun> {
  const res = await fetch(`${bk.endpoint}/jobs/${bk.jobId}/artifacts`, {
    method: "POST",
    headers: { authorization: `Token ${bk.token}`, "content-type": "application/json" },
    body: JSON.stringify({
      id: `curl-${Date.now()}`,
      artifacts: [{ path: "x", file_size: 0, sha1sum: "0".repeat(40) }],
    }),
  });
  const tpl = ((await res.json()) as { upload_instructions: Template }).upload_instructions;
  const lines: string[] = [];
  for (const [i, file] of files.entries()) {
    const rel = path.relative(root, file);
    if (i > 0) lines.push("next");
    for (const [k, v] of Object.entries(tpl.data)) {
      lines.push(`form-string = "${k}=${v.replace("$" + "{artifact:path}", `curl/${rel}`)}"`);
    }
    lines.push(`form = "${tpl.action.file_input}=@${file}"`, `url = "${bk.storageUrl}/form"`);
    lines.push('output = "/dev/null"', "silent", "fail");
  }
  const config = path.join(tmpdir(), `bench-curl-${process.pid}.cfg`);
  writeFileSync(config, `${lines.join("\n")}\n`);
  return curlRun(config);
}

interface Template {
  action: { file_input: string };
  data: Record<string, string>;
}

/** One curl process GETting each artifact's URL (following the redirect) into `dest`. */
async function curlDownload(bk: FakeBuildkite, jobId: string, dest: string): Promise<CurlRun> {
  await mkdir(dest, { recursive: true });
  const lines: string[] = [];
  let i = 0;
  for (const a of bk.finished(jobId).values()) {
    if (i++ > 0) lines.push("next");
    lines.push(`url = "${bk.endpoint}/artifacts/${a.id}/download"`, "location", "fail", "silent");
    lines.push(`output = "${path.join(dest, `f${i}`)}"`);
  }
  const config = path.join(tmpdir(), `bench-curl-dl-${process.pid}.cfg`);
  writeFileSync(config, `${lines.join("\n")}\n`);
  return curlRun(config);
}

async function main() {
  const notes = [
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  ];
  const bundles: Record<string, string> = {};
  for (const name of ["artifact-uploader", "artifact-downloader"]) {
    const spec = findBundles().find((b) => b.name === name);
    if (!spec) throw new Error(`no bundle ${name}`);
    const built = await buildBundle(spec, { version: "bench" });
    if (!built.ok) throw new Error(`could not build ${name}`);
    bundles[name] = spec.outfile;
  }

  const work = await mkdtemp(path.join(tmpdir(), "bench-artifacts-"));
  mkdirSync(path.join(work, "fake"));
  const bk = await startFakeBuildkite({
    dataDir: path.join(work, "fake"),
    multipartThreshold: 512 * MiB,
  });
  const metrics: BenchMetric[] = [];
  try {
    log("generating data...");
    const data = await makeData(path.join(work, "data"));
    const bigFiles = listFiles(data.big);
    const smallFiles = listFiles(data.small);
    const bigMiB = (BIG.count * BIG.size) / MiB;

    // The limit: hashing as the protocol needs it, plus curl doing the transfers.
    log("limit: sha1sum, sha256sum, curl...");
    const sha1Big = await timed(["sha1sum", ...bigFiles]);
    const sha256Big = await timed(["sha256sum", ...bigFiles]);
    const curlUpBig = await curlUpload(bk, data.big, bigFiles);
    const sha1Small = await timed(["sha1sum", ...smallFiles]);
    const sha256Small = await timed(["sha256sum", ...smallFiles]);
    const curlUpSmall = await curlUpload(bk, data.small, smallFiles);

    // Ours, upload.
    log("ours: uploader...");
    const bigJob = bk.addJob({ id: "bench-big", buildId: bk.buildId }).id;
    const smallJob = bk.addJob({ id: "bench-small", buildId: bk.buildId }).id;
    const upBig = await upload(bundles["artifact-uploader"] as string, bk, data.big, bigJob);
    const upSmall = await upload(bundles["artifact-uploader"] as string, bk, data.small, smallJob);
    if (bk.finished(bigJob).size !== BIG.count || bk.finished(smallJob).size !== SMALL.count) {
      throw new Error("the uploader did not upload every file");
    }

    // Limit and ours, download.
    log("limit: curl downloads; ours: downloader...");
    const curlDownBig = await curlDownload(bk, bigJob, path.join(work, "curl-big"));
    const sha256DownBig = await timed(["sha256sum", ...bigFiles]);
    const curlDownSmall = await curlDownload(bk, smallJob, path.join(work, "curl-small"));
    const sha256DownSmall = await timed(["sha256sum", ...smallFiles]);
    const dl = bundles["artifact-downloader"] as string;
    const downBig = await download(dl, bk, "large-*.bin", path.join(work, "ours-big"));
    const downSmall = await download(dl, bk, "dir-*/*.txt", path.join(work, "ours-small"));

    // Memory while moving one 1 GiB file (random head and tail, sparse middle).
    log(`memory: one ${ONE / MiB} MiB file each way...`);
    const one = path.join(work, "one");
    await mkdir(one);
    const gib = path.join(one, "one-gib.bin");
    await writeFile(gib, randomBytes(MiB));
    await truncate(gib, ONE);
    const oneJob = bk.addJob({ id: "bench-one", buildId: bk.buildId }).id;
    const upOne = await upload(bundles["artifact-uploader"] as string, bk, one, oneJob);
    const downOne = await download(dl, bk, "one-gib.bin", path.join(work, "ours-one"));

    const limitUpBig = sha1Big + sha256Big + curlUpBig.ms;
    const limitDownBig = curlDownBig.ms + sha256DownBig;
    const limitUpSmall = sha1Small + sha256Small + curlUpSmall.ms;
    const limitDownSmall = curlDownSmall.ms + sha256DownSmall;
    const rate = (mib: number, ms: number) => Number((mib / (ms / 1000)).toFixed(1));
    const perSec = (n: number, ms: number) => Math.round(n / (ms / 1000));
    const pct = (ours: number, limit: number) => Number(((limit / ours) * 100).toFixed(1));
    const seconds = (s: number) => Number(s.toFixed(2));
    const big = `${BIG.count} x ${BIG.size / MiB} MiB`;
    const small = `${SMALL.count.toLocaleString("en")} x 10 KiB`;
    const oneFile = ONE === 1024 * MiB ? "1 GiB" : `${ONE / MiB} MiB`;
    metrics.push(
      { name: `upload ${big}, ours`, value: rate(bigMiB, upBig.ms), unit: "MiB/s" },
      { name: `upload ${big}, limit`, value: rate(bigMiB, limitUpBig), unit: "MiB/s" },
      {
        name: "upload large files, ours vs limit",
        value: pct(upBig.ms, limitUpBig),
        unit: "%",
        goal: { op: ">=", value: 80 },
      },
      { name: `download ${big}, ours`, value: rate(bigMiB, downBig.ms), unit: "MiB/s" },
      { name: `download ${big}, limit`, value: rate(bigMiB, limitDownBig), unit: "MiB/s" },
      {
        name: "download large files, ours vs limit",
        value: pct(downBig.ms, limitDownBig),
        unit: "%",
        goal: { op: ">=", value: 80 },
      },
      {
        name: `upload ${small}, ours`,
        value: perSec(SMALL.count, upSmall.ms),
        unit: "files/s",
        goal: { op: ">=", value: 1000 },
      },
      {
        name: `upload ${small}, limit`,
        value: perSec(SMALL.count, limitUpSmall),
        unit: "files/s",
      },
      {
        name: `download ${small}, ours`,
        value: perSec(SMALL.count, downSmall.ms),
        unit: "files/s",
        goal: { op: ">=", value: 1000 },
      },
      {
        name: `download ${small}, limit`,
        value: perSec(SMALL.count, limitDownSmall),
        unit: "files/s",
      },
      { name: `upload ${small}, ours, CPU`, value: seconds(upSmall.cpuS), unit: "s" },
      {
        name: `upload ${small}, fake serving ours, CPU`,
        value: seconds(upSmall.fakeCpuS),
        unit: "s",
      },
      {
        name: `upload ${small}, fake serving curl, CPU`,
        value: seconds(curlUpSmall.fakeCpuS),
        unit: "s",
      },
      { name: `download ${small}, ours, CPU`, value: seconds(downSmall.cpuS), unit: "s" },
      {
        name: `download ${small}, fake serving ours, CPU`,
        value: seconds(downSmall.fakeCpuS),
        unit: "s",
      },
      {
        name: `download ${small}, fake serving curl, CPU`,
        value: seconds(curlDownSmall.fakeCpuS),
        unit: "s",
      },
      { name: `upload ${big}, ours, CPU`, value: seconds(upBig.cpuS), unit: "s" },
      { name: `download ${big}, ours, CPU`, value: seconds(downBig.cpuS), unit: "s" },
      {
        name: `uploader peak RSS, one ${oneFile} file`,
        value: Math.round(upOne.peakRssMiB),
        unit: "MiB",
        goal: { op: "<=", value: 128 },
      },
      {
        name: `downloader peak RSS, one ${oneFile} file`,
        value: Math.round(downOne.peakRssMiB),
        unit: "MiB",
        goal: { op: "<=", value: 128 },
      },
      {
        name: `uploader peak RSS, ${big}`,
        value: Math.round(upBig.peakRssMiB),
        unit: "MiB",
      },
      { name: `uploader peak RSS, ${small}`, value: Math.round(upSmall.peakRssMiB), unit: "MiB" },
      {
        name: `downloader peak RSS, ${small}`,
        value: Math.round(downSmall.peakRssMiB),
        unit: "MiB",
      },
    );
    notes.push(
      `limit parts (ms): upload large sha1sum ${sha1Big.toFixed(0)}, sha256sum ${sha256Big.toFixed(0)}, curl ${curlUpBig.ms.toFixed(0)}; download large curl ${curlDownBig.ms.toFixed(0)}, sha256sum ${sha256DownBig.toFixed(0)}`,
      `limit parts (ms): upload small sha1sum ${sha1Small.toFixed(0)}, sha256sum ${sha256Small.toFixed(0)}, curl ${curlUpSmall.ms.toFixed(0)}; download small curl ${curlDownSmall.ms.toFixed(0)}, sha256sum ${sha256DownSmall.toFixed(0)}`,
      "ours includes process start-up, the scan and the API calls (create, state update, search)",
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    for (const m of metrics) log(`${m.name}: ${m.value} ${m.unit}`);
  } finally {
    await bk.close();
    await rm(work, { recursive: true, force: true });
  }
  const file = await writeBenchReport({ bench: "artifacts", metrics, notes });
  log(`report: ${file}`);
}

await main();
