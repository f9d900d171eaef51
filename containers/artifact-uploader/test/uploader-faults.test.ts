import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { noMultipartHint, program } from "@buildpod/artifact-uploader";
import { runInProcess } from "@buildpod/runtime/testing";
import { describe, expect, it } from "vitest";
import { startTokenEcho } from "../../../test/fakes/buildkite-agent-api.ts";
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

  it("names the option and its source when --store is no store, before any work", async () => {
    const ws = await workspace(t.base);
    const before = t.bk.requests.length;
    const bad = startUploader(t.bk, ws, { args: ["--store", "s3:foo"] });
    const r = await bad.running;
    expect(r.code).toBe(2);
    expect(String(r.summary.error)).toContain(
      'store (flag --store): expected "buildkite" or "dir:PATH", got "s3:foo"',
    );
    const empty = await startUploader(t.bk, ws, { env: { ARTIFACT_UPLOADER_STORE: "dir:" } })
      .running;
    expect(empty.code).toBe(2);
    expect(String(empty.summary.error)).toContain("store (env ARTIFACT_UPLOADER_STORE): expected");
    expect(t.bk.requests.length).toBe(before);
  });

  it("names what turned multipart off, and the flag and env var that turn it back on", async () => {
    const env = { name: "BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD", kind: "env" } as const;
    const hint = noMultipartHint(env);
    expect(hint).toBe(
      "set by env BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD: give --no-multipart=false or " +
        "ARTIFACT_UPLOADER_NO_MULTIPART=false to turn them back on, or split the file",
    );
    // The names are the README's, and what the hint says to give does turn parts back on.
    const readme = await readFile(path.join(import.meta.dirname, "../README.md"), "utf8");
    expect(readme).toMatch(/`--no-multipart` +\| `ARTIFACT_UPLOADER_NO_MULTIPART`/);
    for (const [args, extra] of [
      [["--no-multipart=false"], { ARTIFACT_UPLOADER_NO_MULTIPART: "true" }],
      [[], { ARTIFACT_UPLOADER_NO_MULTIPART: "false", [env.name]: "true" }],
    ] as const) {
      const r = await runInProcess(program, ["--print-config", ...args], extra);
      expect(JSON.parse(r.text)).toMatchObject({ noMultipart: false });
    }
  });

  it("refuses a dir: store inside the root before any work, instead of uploading its copies", async () => {
    const ws = await workspace(t.base);
    await writeFile(path.join(ws.root, "a.txt"), "a");
    const store = path.join(ws.root, "store");
    const up = startUploader(t.bk, ws, { args: ["--store", `dir:${store}`] });
    const r = await up.finish();
    expect(r.code).toBe(2);
    expect(String(r.summary.error)).toBe(
      `could not use store dir:${store}: it lies inside --root ${ws.root}, so every copy would ` +
        "be uploaded again; give --store dir:PATH outside the root",
    );
    expect(await readdir(ws.root)).toEqual(["a.txt"]);
  });

  it("scrubs a token read from the lifecycle dir even where a server echoes it", async () => {
    const ws = await workspace(t.base);
    const token = "bkaj_from-the-lifecycle-dir";
    await mkdir(path.join(ws.lifecycle, "env"));
    await writeFile(path.join(ws.lifecycle, "env", "token"), `${token}\n`);
    await writeFile(path.join(ws.root, "a.txt"), "a");
    const echo = await startTokenEcho();
    try {
      const up = startUploader(t.bk, ws, {
        env: {
          BUILDKITE_AGENT_ENDPOINT: echo.endpoint,
          BUILDKITE_AGENT_ACCESS_TOKEN: undefined,
        },
      });
      const r = await up.finish();
      expect(r.code).toBe(4);
      expect(JSON.stringify(r.summary.refused)).toContain("is not valid");
      expect(r.text).not.toContain(token);
    } finally {
      await echo.close();
    }
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

  it("waits out a failing upload's retry at the drain, and reports it left over", async () => {
    // A process of its own: in-process, the test runner would keep an idle event loop alive.
    const ws = await workspace(t.base);
    await writeFile(path.join(ws.root, "a.txt"), "a");
    const notADir = path.join(ws.dir, "not-a-dir");
    await writeFile(notADir, "a file where the store's directory should be");
    await writeFile(path.join(ws.lifecycle, "workload-finished"), "0");
    const main = path.join(import.meta.dirname, "../src/main.ts");
    const args = ["--root", ws.root, "--store", `dir:${notADir}`, "--drain-timeout", "2s"];
    const env = { PATH: process.env.PATH ?? "", BUILDPOD_LIFECYCLE_DIR: ws.lifecycle };
    const child = spawn(process.execPath, [main, ...args], { env, stdio: "ignore" });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(3);
    const status = JSON.parse(
      await readFile(path.join(ws.lifecycle, "status", "artifact-uploader.json"), "utf8"),
    );
    expect(status.summary.left_over).toEqual(["a.txt"]);
  }, 60_000);
});
