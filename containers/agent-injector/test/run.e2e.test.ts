import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";
import { writeJobEnv } from "../src/job-env.ts";
import { ensureBundle, STAND_IN, start, summaryOf } from "./helpers.ts";

const TOKEN = "bkaj_run-job-token-9876543210";
let bk: FakeBuildkite;
let dir: string;
let n = 0;

beforeAll(async () => {
  ensureBundle();
  bk = await startFakeBuildkite({ token: TOKEN });
  dir = await mkdtemp(join(tmpdir(), "agent-injector-run-"));
});
afterAll(async () => {
  await bk.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A pod after `inject` ran: the env files hold the job id, endpoint and token, so `run` is
 * given none of them directly (the way a sidecar container would be configured).
 */
async function pod(jobId = bk.jobId) {
  const lifecycle = join(dir, `pod-${++n}`);
  await mkdir(lifecycle);
  const vars = { BUILDKITE_JOB_ID: jobId, BUILDKITE_AGENT_ENDPOINT: bk.endpoint };
  await writeJobEnv({ dir: join(lifecycle, "env"), vars, token: TOKEN, groupReadable: false });
  const env = {
    BUILDPOD_LIFECYCLE_DIR: lifecycle,
    AGENT_INJECTOR_AGENT_COMMAND: STAND_IN,
    AGENT_INJECTOR_POLL_INTERVAL: "100ms",
  };
  return { lifecycle, env, marker: join(lifecycle, "workload-finished") };
}

describe("agent-injector run", () => {
  it("passes the agent's exit code and output through, token scrubbed, and marks the end", async () => {
    const p = await pod();
    const run = start(["run", "--", "start", "--acquire-job", bk.jobId], {
      ...p.env,
      STAND_IN_EXIT: "3",
    });
    expect(await run.exited).toBe(3);
    expect(run.stdout()).toContain(`args: start --acquire-job ${bk.jobId}\n`);
    expect(run.stdout()).toContain("token: [REDACTED]\n");
    expect(run.stderr()).toContain("on stderr: [REDACTED]\n");
    expect(run.stdout() + run.stderr()).not.toContain(TOKEN);
    expect(await readFile(p.marker, "utf8")).toBe("3\n");
    expect(summaryOf(run.stdout())).toMatchObject({
      agent_exit_code: 3,
      finished: "agent",
      marker: "written",
      cancelled: false,
    });
    // The agent's 3 is its own, not our INCOMPLETE.
    const status = JSON.parse(
      await readFile(join(p.lifecycle, "status", "agent-injector.json"), "utf8"),
    );
    expect(status).toMatchObject({ exit_code: 3, exit_reason: "AGENT_EXIT_CODE" });
  });

  it("refuses a job ID in the job env that is not a UUID (exit 2)", async () => {
    const p = await pod("job-42");
    const run = start(["run"], p.env);
    expect(await run.exited).toBe(2);
    expect(summaryOf(run.stdout()).error).toContain(
      `BUILDKITE_JOB_ID in the job env ${join(p.lifecycle, "env")} is "job-42", expected a Buildkite job ID`,
    );
  });

  it("writes the cancel marker and signals the agent when the job is cancelled mid-run", async () => {
    const job = bk.addJob({ id: randomUUID(), buildId: bk.buildId });
    const p = await pod(job.id);
    const run = start(["run", "--agent-arg", "start"], { ...p.env, STAND_IN_MODE: "wait" });
    await run.waitFor("ready");
    bk.setJobState(job.id, "canceling");

    expect(await run.exited).toBe(143);
    expect(await readFile(join(p.lifecycle, "cancel"), "utf8")).toBe("canceling\n");
    expect(run.stdout()).toContain("got SIGTERM");
    expect(await readFile(p.marker, "utf8")).toBe("143\n");
    expect(summaryOf(run.stdout())).toMatchObject({ cancelled: "canceling", agent_exit_code: 143 });
  });

  it("signals an agent started after the job was already cancelled", async () => {
    const job = bk.addJob({ id: randomUUID(), buildId: bk.buildId, state: "canceled" });
    const p = await pod(job.id);
    const run = start(["run", "--", "start"], { ...p.env, STAND_IN_MODE: "wait" });
    expect(await run.exited).toBe(143);
    expect(await readFile(join(p.lifecycle, "cancel"), "utf8")).toBe("canceled\n");
  });

  it("forwards a stop signal to the agent once and reports the agent's code", async () => {
    const p = await pod();
    const run = start(["run", "--", "start"], { ...p.env, STAND_IN_MODE: "wait" });
    await run.waitFor("ready");
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(130);
    expect(run.stdout().match(/got SIGINT/g)).toHaveLength(1);
    expect(await readFile(p.marker, "utf8")).toBe("130\n");
  });

  it("stops the agent when the workload's marker appears, keeping the workload's code", async () => {
    const p = await pod();
    const run = start(["run", "--", "start"], { ...p.env, STAND_IN_MODE: "wait" });
    await run.waitFor("ready");
    await writeFile(p.marker, "0\n");
    expect(await run.exited).toBe(143);
    expect(run.stdout()).toContain("got SIGTERM");
    expect(await readFile(p.marker, "utf8")).toBe("0\n");
    expect(summaryOf(run.stdout())).toMatchObject({ finished: "done-file", marker: "present" });
  });

  it("kills an agent that ignores SIGTERM at the drain deadline", async () => {
    const p = await pod();
    const env = { ...p.env, STAND_IN_MODE: "ignore-term", BUILDPOD_DRAIN_TIMEOUT: "500ms" };
    const run = start(["run", "--", "start"], env);
    await run.waitFor("ready");
    await writeFile(p.marker, "1\n");
    expect(await run.exited).toBe(137);
    expect(run.stdout()).toContain("ignoring SIGTERM");
    expect(run.stdout()).toContain("drain deadline reached; killed the agent");
  });

  it("without an agent, only watches: cancel marker, then exits 0 when the workload ends", async () => {
    const job = bk.addJob({ id: randomUUID(), buildId: bk.buildId });
    const p = await pod(job.id);
    const run = start(["run"], p.env);
    await run.waitFor("starting");
    bk.setJobState(job.id, "canceled");
    const cancel = join(p.lifecycle, "cancel");
    while ((await readFile(cancel, "utf8").catch(() => "")) === "") {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await readFile(cancel, "utf8")).toBe("canceled\n");
    await writeFile(p.marker, "143\n");
    expect(await run.exited).toBe(0);
    expect(summaryOf(run.stdout())).toMatchObject({ cancelled: "canceled", marker: "present" });
  });

  it("without an agent and without a known exit code, leaves the marker alone", async () => {
    const p = await pod();
    const run = start(["run"], p.env);
    await run.waitFor("starting");
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    await expect(readFile(p.marker, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    expect(summaryOf(run.stdout())).toMatchObject({ finished: "signal", marker: "none" });
  });

  it("names an agent command that cannot be started", async () => {
    const p = await pod();
    const env = { ...p.env, AGENT_INJECTOR_AGENT_COMMAND: join(dir, "not-injected") };
    const run = start(["run", "--", "start"], env);
    expect(await run.exited).toBe(1);
    expect(run.stdout()).toContain(`could not start ${join(dir, "not-injected")}: ENOENT`);
  });
});
