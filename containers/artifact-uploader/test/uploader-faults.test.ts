import { truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startUploader, waitFor, withFakeBuildkite, workspace } from "./helpers.ts";

const t = withFakeBuildkite();

describe("artifact-uploader when things fail", () => {
  it("rides out the API being down for 30 s mid-run", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const up = startUploader(t.bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    await writeFile(path.join(ws.root, "before.txt"), "before");
    await waitFor("the first upload", () => t.bk.finished(job.id).has("before.txt"));
    t.bk.down(30_000, "api");
    const downAt = Date.now();
    for (let i = 0; i < 50; i++) await writeFile(path.join(ws.root, `during-${i}.txt`), `${i}`);
    await waitFor("51 uploads", () => t.bk.finished(job.id).size === 51, 90_000);
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(29_000);
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.lines.some((l) => l.msg === "request failed, retrying")).toBe(true);
    expect(r.text).not.toContain(t.bk.token);
  }, 150_000);

  it("stops with a clear config error before any work when there is no token", async () => {
    const ws = await workspace(t.base);
    const before = t.bk.requests.length;
    await writeFile(path.join(ws.root, "a.txt"), "a");
    const up = startUploader(t.bk, ws, {
      args: ["--store", "buildkite"],
      env: { BUILDKITE_AGENT_ACCESS_TOKEN: undefined },
    });
    const r = await up.running;
    expect(r.code).toBe(2);
    expect(String(r.summary.error)).toMatch(/no job token; set BUILDKITE_AGENT_ACCESS_TOKEN/);
    expect(t.bk.requests.length).toBe(before);
  });

  it("ends with exit 3 and lists the files when the drain deadline cuts 500 MB short", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const names = ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin"];
    const up = startUploader(t.bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, BUILDPOD_DRAIN_TIMEOUT: "10s" },
    });
    // Storage hangs: nothing can finish before the deadline.
    t.bk.inject({ kind: "stall", count: 1_000, match: { server: "storage" } });
    for (const n of names) {
      await writeFile(path.join(ws.root, n), "x");
      await truncate(path.join(ws.root, n), 100 * 1000 ** 2);
    }
    const started = Date.now();
    const r = await up.finish();
    t.bk.clearFaults();
    expect(r.code).toBe(3);
    expect(r.summary.left_over).toEqual(names);
    expect(Date.now() - started).toBeLessThan(40_000);
    expect(t.bk.finished(job.id).size).toBe(0);
  }, 60_000);
});
