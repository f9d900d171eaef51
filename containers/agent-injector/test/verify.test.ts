import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";
import { AgentApi, apiUrl, escapePathSegment } from "../src/agent-api.ts";
import { waitForCancel } from "../src/cancel-watch.ts";
import { verifyToken } from "../src/verify.ts";

let bk: FakeBuildkite;
const apis: AgentApi[] = [];
beforeAll(async () => {
  bk = await startFakeBuildkite({ token: "bkaj_verify-token" });
});
afterEach(async () => {
  await Promise.all(apis.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  await bk.close();
});

function api(token = bk.token, requestTimeoutMs = 5000) {
  const a = new AgentApi({ endpoint: bk.endpoint, token, requestTimeoutMs });
  apis.push(a);
  return a;
}

describe("verifyToken", () => {
  it("accepts the job's token and returns the job state", async () => {
    const verified = await verifyToken({ api: api(), jobId: bk.jobId, retryForMs: 1000 });
    expect(verified).toEqual({ state: "running", attempts: 1 });
    const last = bk.requests.at(-1);
    expect(last).toMatchObject({ method: "GET", path: `/v3/jobs/${bk.jobId}`, status: 200 });
  });

  it("rejects a wrong token at once (401), saying what to check, without retrying", async () => {
    const before = bk.requests.length;
    const attempt = verifyToken({ api: api("bkaj_wrong"), jobId: bk.jobId, retryForMs: 10_000 });
    await expect(attempt).rejects.toMatchObject({
      reason: "token-rejected",
      status: 401,
      message: expect.stringMatching(
        /401.*not valid; check that the Secret holds the access token/,
      ),
    });
    expect(bk.requests.length - before).toBe(1);
  });

  it("reports a forbidden token (403) separately", async () => {
    bk.inject({ kind: "status", status: 403, count: 1 });
    const attempt = verifyToken({ api: api(), jobId: bk.jobId, retryForMs: 10_000 });
    await expect(attempt).rejects.toMatchObject({ reason: "token-forbidden", status: 403 });
  });

  it("reports an unknown job (404) as a job id problem", async () => {
    const attempt = verifyToken({ api: api(), jobId: "no-such-job", retryForMs: 10_000 });
    await expect(attempt).rejects.toMatchObject({
      reason: "job-not-found",
      message: expect.stringContaining("BUILDKITE_JOB_ID"),
    });
  });

  it("retries 5xx and dropped connections until the API answers", async () => {
    bk.inject({ kind: "status", status: 503, count: 2 });
    bk.inject({ kind: "drop", count: 1 });
    const retries: string[] = [];
    const verified = await verifyToken({
      api: api(),
      jobId: bk.jobId,
      retryForMs: 30_000,
      initialBackoffMs: 10,
      onRetry: (err) => retries.push(err.reason),
    });
    expect(verified.attempts).toBe(4);
    expect(retries.sort()).toEqual(["api-unavailable", "api-unavailable", "api-unreachable"]);
  });

  it("gives up on a stalled endpoint after the retry window, never hanging", async () => {
    bk.addJob({ id: "stalled", buildId: bk.buildId });
    bk.inject({ kind: "stall", count: 1000, match: { path: "/v3/jobs/stalled" } });
    const started = Date.now();
    const attempt = verifyToken({
      api: api(bk.token, 300),
      jobId: "stalled",
      retryForMs: 1000,
      initialBackoffMs: 50,
    });
    await expect(attempt).rejects.toMatchObject({
      reason: "api-timeout",
      message: expect.stringMatching(/no answer within 300ms.*gave up after \d+ attempts/),
    });
    // Generous bound: the point is that it ends, not how fast.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("reports an endpoint nothing listens on as unreachable", async () => {
    // A port that was free a moment ago: listen, note it, close.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const closed = new AgentApi({
      endpoint: `http://127.0.0.1:${port}/v3`,
      token: "t",
      requestTimeoutMs: 1000,
    });
    apis.push(closed);
    const attempt = verifyToken({ api: closed, jobId: "j", retryForMs: 200, initialBackoffMs: 50 });
    await expect(attempt).rejects.toMatchObject({
      reason: "api-unreachable",
      message: expect.stringContaining("ECONNREFUSED"),
    });
  });
});

describe("an endpoint with credentials in its URL", () => {
  it("never puts the password into an error message", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const closed = new AgentApi({
      endpoint: `http://ci:endpoint-s3cret@127.0.0.1:${port}/v3`,
      token: "t",
      requestTimeoutMs: 1000,
    });
    apis.push(closed);
    const err = await verifyToken({
      api: closed,
      jobId: "j",
      retryForMs: 100,
      initialBackoffMs: 50,
    }).catch((e: Error) => e);
    expect((err as Error).message).toContain(`http://ci:[redacted]@127.0.0.1:${port}/v3/jobs/j`);
    expect((err as Error).message).not.toContain("endpoint-s3cret");
  });
});

describe("waitForCancel", () => {
  it("resolves with the state once the job is canceling, polling until then", async () => {
    const job = bk.addJob({ id: "cancel-me", buildId: bk.buildId });
    const states: string[] = [];
    const stop = new AbortController();
    const watching = waitForCancel({
      api: api(),
      jobId: job.id,
      intervalMs: 50,
      signal: stop.signal,
      onState: (s) => states.push(s),
    });
    while (states.length < 2) await new Promise((r) => setTimeout(r, 20));
    bk.setJobState(job.id, "canceling");
    await expect(watching).resolves.toBe("canceling");
    expect(states.at(-1)).toBe("canceling");
    expect(states.slice(0, 2)).toEqual(["running", "running"]);
  });

  it("keeps polling through API errors and stops when asked", async () => {
    bk.inject({ kind: "status", status: 500, count: 2, match: { path: "/v3/jobs/flaky" } });
    bk.addJob({ id: "flaky", buildId: bk.buildId });
    const failures: number[] = [];
    const states: string[] = [];
    const stop = new AbortController();
    const watching = waitForCancel({
      api: api(),
      jobId: "flaky",
      intervalMs: 20,
      signal: stop.signal,
      onState: (s) => states.push(s),
      onError: (_err, n) => failures.push(n),
    });
    while (states.length < 1) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await expect(watching).resolves.toBeUndefined();
    expect(failures).toEqual([1, 2]);
  });
});

describe("URLs", () => {
  it("joins the endpoint with one slash and escapes ids like the agent", () => {
    expect(apiUrl("https://agent.buildkite.com/v3/", "jobs/x")).toBe(
      "https://agent.buildkite.com/v3/jobs/x",
    );
    expect(escapePathSegment("../a b.c")).toBe("%2E%2E%2Fa%20b%2Ec");
  });
});
