import { appendFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeFluentd, startFakeFluentd } from "../../../test/fakes/fluentd.ts";
import { makeTestCa } from "../../../test/fakes/tls.ts";
import {
  baseArgs,
  finishWorkload,
  sinksFile,
  startExporter,
  waitFor,
  workspace,
} from "./helpers.ts";

let fluentd: FakeFluentd | undefined;
afterEach(async () => {
  await fluentd?.stop();
  fluentd = undefined;
});

function messages(fake: FakeFluentd): string[] {
  return fake.events.map((e) => String(e.record.message));
}

/** A loopback port nothing listens on: taken, then given back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("log-exporter with fluentd", () => {
  it("warns while the server cannot be reached and reports the sink's counts at the deadline", async () => {
    const ws = workspace();
    const sinks = sinksFile(ws.dir, {
      type: "fluentd",
      host: "127.0.0.1",
      port: await closedPort(),
    });
    writeFileSync(join(ws.logs, "a.log"), "one\ntwo\nthree\n");
    const run = startExporter(baseArgs(ws, sinks), { BUILDPOD_DRAIN_TIMEOUT: "1s" });
    await waitFor(() => run.stdout().includes("could not reach the sink"), "the warning");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(3);

    const warnings = run.logLines().filter((l) => l.msg.startsWith("could not reach the sink"));
    // The first failed attempt is told at once; the next ones at most every 10 s.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: "warn", sink: "main", attempt: 1 });
    expect(warnings[0].err.code).toBe("ECONNREFUSED");
    expect(run.summary()).toMatchObject({ sink: "main", lines: 3, delivered: 0, undelivered: 3 });
    expect(run.summary()).not.toHaveProperty("drain_overdue");
  });

  it("sends PackedForward chunks after the shared-key handshake and waits for acks", async () => {
    fluentd = await startFakeFluentd({ sharedKey: "s3cret" });
    const ws = workspace();
    writeFileSync(join(ws.dir, "key"), "s3cret\n");
    const sinks = sinksFile(ws.dir, {
      type: "fluentd",
      host: "127.0.0.1",
      port: fluentd.port,
      tag: "ci.job",
      sharedKeyFile: join(ws.dir, "key"),
      ackTimeout: "2s",
    });
    writeFileSync(join(ws.logs, "a.log"), "one\ntwo\n");
    const run = startExporter(baseArgs(ws, sinks));
    await waitFor(() => fluentd?.events.length === 2, "two events");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    expect(messages(fluentd).sort()).toEqual(["one", "two"]);
    expect(fluentd.events[0]).toMatchObject({
      tag: "ci.job",
      record: { "buildkite.job_id": "job-1" },
    });
    expect(fluentd.chunks.length).toBeGreaterThan(0);
    expect(run.stdout()).not.toContain("s3cret");
  });

  it("resends a chunk whose connection closed before the ack", async () => {
    fluentd = await startFakeFluentd({ onChunk: ({ n }) => (n === 1 ? "close" : "ack") });
    const ws = workspace();
    const sinks = sinksFile(ws.dir, {
      type: "fluentd",
      host: "127.0.0.1",
      port: fluentd.port,
      ackTimeout: "1s",
    });
    writeFileSync(join(ws.logs, "a.log"), "alpha\nbeta\n");
    const run = startExporter(baseArgs(ws, sinks));
    await waitFor(() => fluentd?.events.length === 2, "both events");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);
    expect(messages(fluentd).sort()).toEqual(["alpha", "beta"]);
    expect(fluentd.chunks.length).toBeGreaterThanOrEqual(2);
  });

  it("keeps every line when the forward server restarts mid-run", async () => {
    fluentd = await startFakeFluentd();
    const ws = workspace();
    const sinks = sinksFile(ws.dir, {
      type: "fluentd",
      host: "127.0.0.1",
      port: fluentd.port,
      ackTimeout: "1s",
    });
    const run = startExporter(baseArgs(ws, sinks));
    const file = join(ws.logs, "a.log");
    for (let i = 0; i < 20; i++) appendFileSync(file, `before ${i}\n`);
    await waitFor(() => fluentd?.events.length === 20, "the first 20 events");

    await fluentd.stop();
    for (let i = 0; i < 20; i++) appendFileSync(file, `during ${i}\n`);
    await new Promise((r) => setTimeout(r, 1500));
    await fluentd.start();
    for (let i = 0; i < 20; i++) appendFileSync(file, `after ${i}\n`);
    await waitFor(() => new Set(messages(fluentd as FakeFluentd)).size === 60, "all 60 lines");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    // Forward is at-least-once: a chunk stored just before the restart may come twice, but
    // every line arrives.
    const distinct = new Set(messages(fluentd));
    for (const phase of ["before", "during", "after"]) {
      for (let i = 0; i < 20; i++) expect(distinct.has(`${phase} ${i}`)).toBe(true);
    }
  });

  it("connects with TLS, trusting the CA file", async () => {
    const ws = workspace();
    const tls = await makeTestCa(ws.dir);
    fluentd = await startFakeFluentd({ tls: { key: tls.key, cert: tls.cert } });
    const sinks = sinksFile(ws.dir, {
      type: "fluentd",
      host: "127.0.0.1",
      port: fluentd.port,
      tls: true,
      caFile: tls.caFile,
    });
    writeFileSync(join(ws.logs, "a.log"), "over tls\n");
    const run = startExporter(baseArgs(ws, sinks));
    await waitFor(() => fluentd?.events.length === 1, "the event");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);
    expect(messages(fluentd)).toEqual(["over tls"]);
  });
});
