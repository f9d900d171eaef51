import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import {
  appendFile,
  mkdir,
  open,
  readFile,
  rm,
  symlink,
  truncate,
  unlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";
import { startUploader, tempBase, waitFor, workspace } from "./helpers.ts";

let bk: FakeBuildkite;
let base: string;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  bk = await startFakeBuildkite({ multipartThreshold: 64 * 1024 ** 2, partSize: 128 * 1024 ** 2 });
  base = await tempBase();
});
afterAll(async () => {
  await bk.close();
  await rm(base, { recursive: true, force: true });
});

/** A job of its own per test, so that `bk.finished(job)` holds only that test's artifacts. */
function newJob() {
  return bk.addJob({ id: `job-${Math.random().toString(36).slice(2)}`, buildId: bk.buildId });
}

describe("artifact-uploader", () => {
  it("uploads 2,000 files appearing at once, reading them only", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const up = startUploader(bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    for (let d = 0; d < 20; d++) {
      await mkdir(path.join(ws.root, `d${d}`));
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          writeFile(path.join(ws.root, `d${d}`, `f${i}.txt`), `file ${d}/${i}\n`),
        ),
      );
    }
    await waitFor("2,000 uploads", () => bk.finished(job.id).size === 2000, 120_000);
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.summary.uploaded).toBe(2000);
    const one = bk.finished(job.id).get("d7/f42.txt");
    expect(one?.stored?.sha256).toBe(sha256("file 7/42\n"));
    expect(one?.content_type).toBe("text/plain");
    expect(await readFile(path.join(ws.root, "d7/f42.txt"), "utf8")).toBe("file 7/42\n");
  }, 180_000);

  it("waits for a file written slowly over 10 s and uploads it once, whole", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const up = startUploader(bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, ARTIFACT_UPLOADER_QUIET_PERIOD: "2s" },
    });
    const file = path.join(ws.root, "slow.log");
    let content = "";
    for (let i = 0; i < 20; i++) {
      const line = `line ${i}\n`;
      content += line;
      await appendFile(file, line);
      await new Promise((r) => setTimeout(r, 500));
    }
    await waitFor("the slow file", () => bk.finished(job.id).has("slow.log"));
    const r = await up.finish();
    expect(r.code).toBe(0);
    const uploads = bk.artifacts.filter((a) => a.jobId === job.id && a.path === "slow.log");
    expect(uploads).toHaveLength(1);
    expect(uploads[0]?.stored?.sha256).toBe(sha256(content));
  }, 60_000);

  it("uploads a 1 GiB file in parts", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const file = path.join(ws.root, "big.bin");
    // Sparse: 1 GiB of zeros with a marker at the start and end, created without writing it.
    await writeFile(file, "head");
    await truncate(file, 1024 ** 3);
    const fh = await open(file, "r+");
    await fh.write("tail", 1024 ** 3 - 4);
    await fh.close();
    // The fake checks each part's size and ETag but keeps no bytes: 1 GiB stays off its disk.
    // Hashing 1 GiB twice over (SHA-1, SHA-256) takes seconds of CPU: a loaded machine needs room.
    bk.keepParts = false;
    const up = startUploader(bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, BUILDPOD_DRAIN_TIMEOUT: "170s" },
    });
    const r = await up.finish();
    bk.keepParts = true;
    expect(r.code).toBe(0);
    const a = bk.finished(job.id).get("big.bin");
    expect(a?.multipart?.parts).toHaveLength(8);
    expect(a?.stored?.size).toBe(1024 ** 3);
    expect(a?.sha256sum).toMatch(/^[0-9a-f]{64}$/);
  }, 180_000);

  it("keeps odd names exactly, skips unsafe symlinks and FIFOs, survives deletions", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const odd = ["with space.txt", "ünïcødé/ñ.txt", "hash#1.txt", "100%.txt", "new\nline.txt"];
    await mkdir(path.join(ws.root, "ünïcødé"));
    for (const name of odd) await writeFile(path.join(ws.root, name), `is ${name}`);
    await symlink("/etc/passwd", path.join(ws.root, "passwd"));
    await symlink(path.dirname(ws.root), path.join(ws.root, "outside-dir"));
    await writeFile(path.join(ws.root, "target.txt"), "inside");
    await symlink("target.txt", path.join(ws.root, "inside-link.txt"));
    execFileSync("mkfifo", [path.join(ws.root, "pipe")]);
    await writeFile(path.join(ws.root, "notes.txt.swp"), "editor");
    await writeFile(path.join(ws.root, "gone.txt"), "soon gone");

    const up = startUploader(bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, ARTIFACT_UPLOADER_QUIET_PERIOD: "1s" },
    });
    await new Promise((r) => setTimeout(r, 300));
    await unlink(path.join(ws.root, "gone.txt"));
    await waitFor("the odd names", () => odd.every((n) => bk.finished(job.id).has(n)));
    const r = await up.finish();
    expect(r.code).toBe(0);
    const paths = [...bk.finished(job.id).keys()].sort();
    expect(paths).toEqual([...odd, "inside-link.txt", "target.txt"].sort());
    for (const name of odd) {
      expect(bk.finished(job.id).get(name)?.stored?.sha256).toBe(sha256(`is ${name}`));
    }
    const passwd = await readFile("/etc/passwd");
    expect(bk.artifacts.some((a) => a.stored && a.stored.sha256 === sha256(passwd))).toBe(false);
    const warned = r.lines.filter((l) => l.code === "symlink-outside-root").map((l) => l.path);
    expect([...new Set(warned)].sort()).toEqual(["outside-dir", "passwd"]);
    expect(r.lines.some((l) => l.code === "special-file" && l.path === "pipe")).toBe(true);
  }, 60_000);

  it("rides out the API being down for 30 s mid-run", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const up = startUploader(bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    await writeFile(path.join(ws.root, "before.txt"), "before");
    await waitFor("the first upload", () => bk.finished(job.id).has("before.txt"));
    bk.down(30_000, "api");
    const downAt = Date.now();
    for (let i = 0; i < 50; i++) await writeFile(path.join(ws.root, `during-${i}.txt`), `${i}`);
    await waitFor("51 uploads", () => bk.finished(job.id).size === 51, 90_000);
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(29_000);
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.lines.some((l) => l.msg === "request failed, retrying")).toBe(true);
    expect(r.text).not.toContain(bk.token);
  }, 150_000);

  it("stops with a clear config error before any work when there is no token", async () => {
    const ws = await workspace(base);
    const before = bk.requests.length;
    await writeFile(path.join(ws.root, "a.txt"), "a");
    const up = startUploader(bk, ws, {
      args: ["--store", "buildkite"],
      env: { BUILDKITE_AGENT_ACCESS_TOKEN: undefined },
    });
    const r = await up.running;
    expect(r.code).toBe(2);
    expect(String(r.summary.error)).toMatch(/no job token; set BUILDKITE_AGENT_ACCESS_TOKEN/);
    expect(bk.requests.length).toBe(before);
  });

  it("ends with exit 3 and lists the files when the drain deadline cuts 500 MB short", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const names = ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin"];
    const up = startUploader(bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, BUILDPOD_DRAIN_TIMEOUT: "10s" },
    });
    // Storage hangs: nothing can finish before the deadline.
    bk.inject({ kind: "stall", count: 1_000, match: { server: "storage" } });
    for (const n of names) {
      await writeFile(path.join(ws.root, n), "x");
      await truncate(path.join(ws.root, n), 100 * 1000 ** 2);
    }
    const started = Date.now();
    const r = await up.finish();
    bk.clearFaults();
    expect(r.code).toBe(3);
    expect(r.summary.left_over).toEqual(names);
    expect(Date.now() - started).toBeLessThan(40_000);
    expect(bk.finished(job.id).size).toBe(0);
  }, 60_000);

  it("uploads a file again at the drain when it changed after its upload", async () => {
    const ws = await workspace(base);
    const job = newJob();
    const up = startUploader(bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    const file = path.join(ws.root, "report.json");
    await writeFile(file, '{"v":1}');
    await waitFor("the first upload", () => bk.finished(job.id).has("report.json"));
    await writeFile(file, '{"v":2}');
    await new Promise((r) => setTimeout(r, 1_000));
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.summary.reuploaded).toEqual(["report.json"]);
    expect(bk.finished(job.id).get("report.json")?.stored?.sha256).toBe(sha256('{"v":2}'));
    expect(existsSync(file)).toBe(true);
  }, 60_000);
});
