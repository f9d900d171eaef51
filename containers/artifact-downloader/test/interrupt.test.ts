import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";

const MAIN = path.join(import.meta.dirname, "..", "src", "main.ts");

let bk: FakeBuildkite;
let work: string;

beforeAll(async () => {
  bk = await startFakeBuildkite();
  work = await mkdtemp(path.join(tmpdir(), "downloader-stop-"));
});
afterAll(async () => {
  await bk.close();
  await rm(work, { recursive: true, force: true });
});

/** Starts the downloader in a process of its own, which a signal can stop; lines as JSON. */
function start(args: string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    if (line.startsWith("{")) lines.push(JSON.parse(line));
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
  const until = (msg: string, n: number) =>
    new Promise<void>((resolve, reject) => {
      const check = () => count(msg) >= n && resolve();
      waiters.push(check);
      check();
      void exited.then(() => reject(new Error(`exited before ${n} "${msg}": ${lines}`)));
    });
  return { child, lines, exited, until };
}

// Finding 1 of the fresh-user test: SIGTERM during a download exited 70, "internal error".
describe("artifact-downloader stopped by SIGTERM", () => {
  it("ends as an explained interruption (130) with what it downloaded, leaving no temp file", async () => {
    for (let i = 0; i < 4; i++) await bk.seedArtifact({ path: `stop/f${i}.txt`, content: `f${i}` });
    // Two downloads hang in the storage until the fake closes; the other two complete.
    bk.inject({ kind: "stall", count: 2, match: { server: "storage" } });
    const dest = path.join(work, "dest");
    const run = start(["--query", "stop/*", "--dest", dest], {
      BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
      BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
      BUILDKITE_BUILD_ID: bk.buildId,
      BUILDPOD_LIFECYCLE_DIR: work,
      BUILDPOD_LOG_LEVEL: "debug",
    });
    await run.until("downloaded artifact", 2);
    run.child.kill("SIGTERM");

    expect(await run.exited).toBe(130);
    const messages = run.lines.map((l) => String(l.msg));
    expect(messages).toContain("received SIGTERM: stopping");
    expect(messages.some((m) => /internal error|workload finished/.test(m))).toBe(false);
    const errors = run.lines.filter((l) => l.level === "error").map((l) => l.msg);
    expect(errors).toEqual([
      "could not finish the download: interrupted (received SIGTERM) after 2 of 4 artifacts; " +
        "no file is left half-written, so running it again is safe",
    ]);
    const status = JSON.parse(
      await readFile(path.join(work, "status", "artifact-downloader.json"), "utf8"),
    );
    expect(status).toMatchObject({ exit_code: 130, exit_reason: "INTERRUPTED" });
    expect(status.summary).toMatchObject({
      found: 4,
      downloaded: 2,
      failed: [],
      interrupted: true,
    });
    expect((await readdir(path.join(dest, "stop"))).length).toBe(2);
  });
});
