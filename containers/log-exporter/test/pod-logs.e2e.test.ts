// End-to-end: the workload's output, from the fake Kubernetes API's pod log stream and from
// CRI log files.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FakeElasticsearch,
  startFakeElasticsearch,
} from "../../../test/fakes/elasticsearch.ts";
import { type FakeKubernetes, startFakeKubernetes } from "../../../test/fakes/kubernetes.ts";
import {
  baseArgs,
  finishWorkload,
  sinksFile,
  startExporter,
  waitFor,
  workspace,
} from "./helpers.ts";

let es: FakeElasticsearch | undefined;
let kube: FakeKubernetes | undefined;
afterEach(async () => {
  await es?.close();
  await kube?.close();
  es = kube = undefined;
});

type Doc = { message: string; stream?: string; kubernetes?: Record<string, unknown> };
const docs = (fake: FakeElasticsearch) => [...fake.documents("logs").values()] as unknown as Doc[];

describe("log-exporter reading the workload's output", () => {
  it("follows the pod log stream across dropped connections without duplicates", async () => {
    es = await startFakeElasticsearch();
    kube = await startFakeKubernetes({ token: "pod-token" });
    const pod = kube.addPod({
      name: "job-pod",
      namespace: "ci",
      containers: ["workload", "log-exporter"],
    });
    pod.start("workload");
    const ws = workspace();
    const sa = join(ws.dir, "sa");
    mkdirSync(sa);
    writeFileSync(join(sa, "token"), "pod-token\n");
    const sinks = sinksFile(ws.dir, { type: "elasticsearch", nodes: [es.url], index: "logs" });
    const run = startExporter(
      [
        ...baseArgs(ws, sinks),
        "--pod-logs",
        "--kubernetes-api",
        kube.url,
        "--service-account-dir",
        sa,
      ],
      { POD_NAME: "job-pod", POD_NAMESPACE: "ci" },
    );

    pod.log("workload", "step 1", "step 2");
    await waitFor(() => es?.documents("logs").size === 2, "the first two lines");
    expect(kube.dropConnections("log")).toBe(1);
    pod.log("workload", "step 3");
    await waitFor(() => es?.documents("logs").size === 3, "the line after the reconnect");
    kube.dropConnections("log");
    pod.log("workload", "step 4", "step 5");
    pod.terminate("workload", { exitCode: 0, reason: "Completed" });
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const messages = docs(es).map((d) => d.message);
    expect(messages.sort()).toEqual(["step 1", "step 2", "step 3", "step 4", "step 5"]);
    expect(docs(es)[0]?.kubernetes).toEqual({
      namespace: "ci",
      pod: { name: "job-pod" },
      container: { name: "workload" },
    });
    // Every reconnect resumed from the last timestamp seen.
    const logRequests = kube.requests.filter((r) => r.path.endsWith("/log"));
    expect(logRequests.length).toBeGreaterThanOrEqual(3);
    expect(logRequests.slice(1).every((r) => r.query.sinceTime !== undefined)).toBe(true);
  });

  it("joins CRI partial lines and keeps the stream of each", async () => {
    es = await startFakeElasticsearch();
    const ws = workspace();
    const cri = join(ws.dir, "pods", "ci_job-pod_uid", "workload");
    mkdirSync(cri, { recursive: true });
    writeFileSync(
      join(cri, "0.log"),
      [
        "2026-01-02T03:04:05.000000001Z stdout P first half, ",
        "2026-01-02T03:04:05.000000002Z stderr F an error",
        "2026-01-02T03:04:05.000000003Z stdout F second half",
        "2026-01-02T03:04:05.000000004Z stdout F ",
        "",
      ].join("\n"),
    );
    const sinks = sinksFile(ws.dir, { type: "elasticsearch", nodes: [es.url], index: "logs" });
    const run = startExporter([
      ...baseArgs(ws, sinks),
      "--pod-logs",
      "--cri-log-dir",
      join(ws.dir, "pods"),
    ]);
    await waitFor(() => es?.documents("logs").size === 3, "three records");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const records = docs(es)
      .map((d) => ({
        message: d.message,
        stream: d.stream,
        time: (d as Record<string, unknown>)["@timestamp"],
      }))
      .sort((a, b) => String(a.time).localeCompare(String(b.time)));
    expect(records).toEqual([
      {
        message: "first half, second half",
        stream: "stdout",
        time: "2026-01-02T03:04:05.000000001Z",
      },
      { message: "an error", stream: "stderr", time: "2026-01-02T03:04:05.000000002Z" },
      { message: "", stream: "stdout", time: "2026-01-02T03:04:05.000000004Z" },
    ]);
  });
});
