import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { program } from "@buildpod/artifact-uploader";
import { runInProcess } from "@buildpod/runtime/testing";
import { afterAll, beforeAll } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";

/** A fresh artifacts root and lifecycle dir for one run. */
export async function workspace(base: string) {
  const dir = await mkdtemp(path.join(base, "run-"));
  const root = path.join(dir, "artifacts");
  const lifecycle = path.join(dir, "lifecycle");
  await mkdir(root, { recursive: true });
  await mkdir(lifecycle, { recursive: true });
  return { dir, root, lifecycle };
}

export function tempBase(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), "uploader-"));
}

/**
 * One fake Buildkite API and one temp folder for a test file, started before its tests and
 * removed after them. `newJob()` gives each test a job of its own, so that
 * `bk.finished(job)` holds only that test's artifacts.
 */
export function withFakeBuildkite() {
  const suite = {
    bk: undefined as unknown as FakeBuildkite,
    base: "",
    newJob: () =>
      suite.bk.addJob({
        id: `job-${Math.random().toString(36).slice(2)}`,
        buildId: suite.bk.buildId,
      }),
  };
  beforeAll(async () => {
    suite.bk = await startFakeBuildkite({
      multipartThreshold: 64 * 1024 ** 2,
      partSize: 128 * 1024 ** 2,
    });
    suite.base = await tempBase();
  });
  afterAll(async () => {
    await suite.bk.close();
    await rm(suite.base, { recursive: true, force: true });
  });
  return suite;
}

/**
 * Starts the uploader in this process against the fake; `finish()` writes the workload's
 * marker file (atomically, as the workload wrapper does) and resolves with the run's result.
 */
export function startUploader(
  bk: FakeBuildkite,
  ws: { root: string; lifecycle: string },
  opts: { args?: string[]; env?: Record<string, string | undefined> } = {},
) {
  const env = {
    BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
    BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
    BUILDKITE_JOB_ID: bk.jobId,
    BUILDPOD_LIFECYCLE_DIR: ws.lifecycle,
    BUILDPOD_DRAIN_TIMEOUT: "60s",
    ARTIFACT_UPLOADER_ROOT: ws.root,
    ARTIFACT_UPLOADER_QUIET_PERIOD: "300ms",
    ARTIFACT_UPLOADER_RETRY_DELAY: "500ms",
    ...opts.env,
  };
  const running = runInProcess(program, opts.args ?? [], env);
  return {
    running,
    finish: async (exitCode = 0) => {
      const marker = path.join(ws.lifecycle, "workload-finished");
      await writeFile(`${marker}.tmp`, String(exitCode));
      await rename(`${marker}.tmp`, marker);
      return running;
    },
  };
}

/** Polls `check` until it is true; fails after `timeoutMs` naming `what`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
