import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../src/index.ts";
import { Child } from "./fixtures/child.ts";

const STALLED = join(import.meta.dirname, "fixtures", "stalled-sidecar.ts");

// Node exits with code 0 when its event loop runs dry, even while a command still awaits a
// promise: the container would look done, with no summary and no status file.
describe("a command left waiting on nothing", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "stalled-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("ends as an internal error with its summary, not as a silent success", async () => {
    await writeFile(join(dir, "workload-finished"), "0\n");
    const child = new Child(STALLED, ["stall"], {
      BUILDPOD_LIFECYCLE_DIR: dir,
      BUILDPOD_DRAIN_TIMEOUT: "1s",
    });
    const exited = await child.exited;

    expect(exited.code).toBe(ExitCode.INTERNAL);
    const error = child.events.find((e) => e.level === "error");
    expect(error?.msg).toContain("nothing left to wait for");
    const status = JSON.parse(await readFile(join(dir, "status", "stalled.json"), "utf8"));
    expect(status).toMatchObject({
      exit_code: ExitCode.INTERNAL,
      summary: { delivered: 1, undelivered: 2 },
    });
  });

  it("keeps a drain waiting on unref'd back-off timers going until its deadline", async () => {
    await writeFile(join(dir, "workload-finished"), "0\n");
    const started = Date.now();
    const child = new Child(STALLED, ["retry"], {
      BUILDPOD_LIFECYCLE_DIR: dir,
      BUILDPOD_DRAIN_TIMEOUT: "1s",
    });
    const exited = await child.exited;

    expect(exited.code).toBe(ExitCode.INCOMPLETE);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    const summary = child.events.find((e) => e.msg === "summary")?.summary;
    expect(summary?.attempts).toBeGreaterThan(5);
  });
});
