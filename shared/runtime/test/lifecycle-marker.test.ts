import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLifecycle, parseMarker, readMarker, writeMarker } from "../src/lifecycle/index.ts";
import { captureLogger } from "./fixtures/capture-logger.ts";

describe("marker file", () => {
  let dir: string;
  let n = 0;
  const fresh = async () => {
    const sub = join(dir, `case-${++n}`);
    await mkdir(sub);
    return sub;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lifecycle-marker-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each([
    ["0\n", 0],
    [" 137 \n", 137],
    ["-1", -1],
    ["", undefined],
    ["done", undefined],
    ["12abc", undefined],
    ["1\n2\n", undefined],
  ])("parses %j as exit code %s", (raw, exitCode) => {
    expect(parseMarker(raw)).toEqual({ exitCode, raw });
  });

  it("writes atomically and reads back, leaving no temp file", async () => {
    const sub = await fresh();
    const file = join(sub, "workload-finished");
    expect(await readMarker(file)).toBeUndefined();
    await writeMarker(file, 3);
    expect(await readFile(file, "utf8")).toBe("3\n");
    expect(await readMarker(file)).toEqual({ exitCode: 3, raw: "3\n" });
    expect(await readdir(sub)).toEqual(["workload-finished"]);
    await expect(writeMarker(file, 1.5)).rejects.toThrow(/exit code must be an integer/);
    await expect(writeMarker(join(sub, "missing", "m"), 0)).rejects.toThrow(
      /could not write marker/,
    );
  });

  it("finishes when the marker appears, in a directory created after the start", async () => {
    const file = join(dir, "later", "workload-finished");
    const lifecycle = createLifecycle({
      doneFile: file,
      drainTimeoutMs: 1000,
      pollIntervalMs: 100,
      signals: false,
    });
    try {
      await sleep(150);
      await mkdir(join(dir, "later"));
      await writeMarker(file, 7);
      const finished = await lifecycle.finished;
      expect(finished).toEqual({
        reason: "done-file",
        exitCode: 7,
        detail: `marker file ${file} says exit code 7`,
      });
    } finally {
      await lifecycle.close();
    }
  });

  it("finishes at once on a marker that is already there", async () => {
    const file = join(await fresh(), "workload-finished");
    await writeMarker(file, 0);
    const lifecycle = createLifecycle({ doneFile: file, drainTimeoutMs: 1000, signals: false });
    try {
      expect(await lifecycle.finished).toMatchObject({ reason: "done-file", exitCode: 0 });
    } finally {
      await lifecycle.close();
    }
  });

  it("waits for a marker written in place to be complete", async () => {
    const file = join(await fresh(), "workload-finished");
    const logger = captureLogger();
    // A long settle time, so that a stalled test process cannot turn the wait into a give-up.
    const lifecycle = createLifecycle({
      doneFile: file,
      drainTimeoutMs: 1000,
      markerSettleMs: 30_000,
      signals: false,
      logger,
    });
    try {
      // A writer without rename: the file exists empty for a moment before its content lands.
      await writeFile(file, "");
      await sleep(300);
      await appendFile(file, "42\n");
      expect(await lifecycle.finished).toMatchObject({ reason: "done-file", exitCode: 42 });
      expect(logger.records.filter((r) => r.level === "warn")).toEqual([]);
    } finally {
      await lifecycle.close();
    }
  });

  it("reports a marker without a number with an unknown exit code and a warning", async () => {
    const file = join(await fresh(), "workload-finished");
    const logger = captureLogger();
    const lifecycle = createLifecycle({
      doneFile: file,
      drainTimeoutMs: 1000,
      signals: false,
      logger,
    });
    try {
      await writeFile(file, "finished!\n");
      const finished = await lifecycle.finished;
      expect(finished.reason).toBe("done-file");
      expect(finished.exitCode).toBeUndefined();
      expect(finished.detail).toMatch(/without an exit code/);
      const warning = logger.records.find((r) => r.level === "warn");
      expect(warning?.msg).toMatch(/does not hold an exit code/);
      expect(warning?.fields).toMatchObject({ path: file, content: "finished!\n" });
    } finally {
      await lifecycle.close();
    }
  });

  it("aborts the drain signal only after finished, once the drain timeout passed", async () => {
    const file = join(await fresh(), "workload-finished");
    const lifecycle = createLifecycle({
      doneFile: file,
      drainTimeoutMs: 300,
      pollIntervalMs: 100,
      signals: false,
    });
    try {
      const drain = lifecycle.drainSignal();
      await sleep(500);
      expect(drain.aborted).toBe(false);
      const writtenAt = performance.now();
      await writeMarker(file, 0);
      await lifecycle.finished;
      expect(lifecycle.drainSignal()).toBe(drain);
      await new Promise((resolve) => drain.addEventListener("abort", resolve, { once: true }));
      // The drain timer starts after the marker was written, so it cannot fire sooner.
      expect(performance.now() - writtenAt).toBeGreaterThanOrEqual(300);
      expect((drain.reason as Error).name).toBe("TimeoutError");
    } finally {
      await lifecycle.close();
    }
  });

  it("refuses options it cannot honour", () => {
    expect(() => createLifecycle({ drainTimeoutMs: -1, signals: false })).toThrow(/drainTimeoutMs/);
    expect(() =>
      createLifecycle({ drainTimeoutMs: 10, pollIntervalMs: 0, signals: false }),
    ).toThrow(/pollIntervalMs/);
  });
});
