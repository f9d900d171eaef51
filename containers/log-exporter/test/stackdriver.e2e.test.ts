// End-to-end: the exporter against the fake Cloud Logging gRPC server.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FakeCloudLogging,
  type FakeLogEntry,
  startFakeCloudLogging,
} from "../../../test/fakes/cloud-logging.ts";
import {
  baseArgs,
  finishWorkload,
  sinksFile,
  startExporter,
  waitFor,
  workspace,
} from "./helpers.ts";

let fake: FakeCloudLogging | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

/** The message of an entry: jsonPayload arrives as a protobuf Struct. */
function message(entry: FakeLogEntry): string {
  const payload = entry.jsonPayload as { fields?: { message?: { stringValue?: string } } };
  return payload.fields?.message?.stringValue ?? "";
}

function ours(f: FakeCloudLogging): FakeLogEntry[] {
  return f.entries.filter((e) => e.logName === "projects/proj/logs/jobs");
}

/** The sink of these tests: Cloud Logging on a loopback port, without TLS. */
function sinkAt(port: number) {
  return {
    type: "stackdriver",
    projectId: "proj",
    logId: "jobs",
    location: "europe-west1",
    clusterName: "ci",
    apiEndpoint: "127.0.0.1",
    port,
    insecure: true,
  };
}

describe("log-exporter with stackdriver", () => {
  it("writes k8s_container entries, splits an oversized line and dead-letters refused entries", async () => {
    fake = await startFakeCloudLogging({
      callStatus: ({ n }) =>
        n === 1 ? { code: 14, message: "unavailable for a moment" } : undefined,
      entryVerdict: (entry) =>
        message(entry) === "refused" ? { code: 3, message: "invalid entry" } : undefined,
    });
    const ws = workspace();
    const sinks = sinksFile(ws.dir, sinkAt(fake.port));
    const long = "y".repeat(600 * 1024);
    writeFileSync(join(ws.logs, "a.log"), `first\nrefused\n${long}\nlast\n`);
    const run = startExporter(baseArgs(ws, sinks), { POD_NAME: "job-pod", POD_NAMESPACE: "ci" });
    await waitFor(() => ours(fake as FakeCloudLogging).length >= 5, "the entries");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(4);

    const entries = ours(fake);
    const texts = entries.map(message);
    expect(texts).toContain("first");
    expect(texts).toContain("last");
    expect(texts).not.toContain("refused");
    const pieces = entries.filter((e) => message(e).startsWith("y"));
    expect(pieces.length).toBeGreaterThanOrEqual(3);
    expect(pieces.map(message).join("")).toBe(long);
    expect(entries[0]?.resource).toMatchObject({
      type: "k8s_container",
      labels: { project_id: "proj", cluster_name: "ci", namespace_name: "ci", pod_name: "job-pod" },
    });
    // insertIds are the record ids: unique, and stable across retries.
    expect(new Set(entries.map((e) => e.insertId)).size).toBe(entries.length);

    const dead = readFileSync(join(ws.state, "dead-letter.ndjson"), "utf8");
    expect(JSON.parse(dead.trim())).toMatchObject({ message: "refused", status: 3 });
  });

  it("says an unreachable endpoint cannot be reached, once, and ends at the drain deadline", async () => {
    const closed = await startFakeCloudLogging();
    const port = closed.port;
    await closed.close();
    const ws = workspace();
    const sinks = sinksFile(ws.dir, sinkAt(port));
    writeFileSync(join(ws.logs, "a.log"), "waits\n");
    const run = startExporter([...baseArgs(ws, sinks), "--drain-timeout", "2s"]);
    await waitFor(() => run.stdout().includes("could not reach the sink"), "the warning");
    finishWorkload(ws.lifecycle);

    expect(await run.exited).toBe(3);
    const lines = run.logLines();
    expect(lines.filter((l) => l.msg.startsWith("could not reach the sink"))).toHaveLength(1);
    expect(lines.some((l) => l.msg === "could not deliver a batch; retrying")).toBe(false);
    expect(run.summary()).toMatchObject({ undelivered: 1 });
  }, 60_000);
});
