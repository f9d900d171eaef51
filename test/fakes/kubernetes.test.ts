import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type FakeKubernetes,
  formatTimestamp,
  parseRfc3339,
  startFakeKubernetes,
} from "./kubernetes.ts";

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are read loosely in this test
type Json = any;

/** Reads a streamed body line by line as it arrives. */
async function* lines(res: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let end = pending.indexOf("\n");
      while (end >= 0) {
        yield pending.slice(0, end);
        pending = pending.slice(end + 1);
        end = pending.indexOf("\n");
      }
    }
  } finally {
    // Ends the request when the caller stops reading early.
    await reader.cancel().catch(() => {});
  }
  if (pending) yield pending;
}

// Exercised with the platform's fetch, as any HTTP client talks to the real API server.
describe("fake kubernetes api", () => {
  let kube: FakeKubernetes;
  const get = (path: string, token = kube.token) =>
    fetch(`${kube.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    kube = await startFakeKubernetes({ token: "s3cret" });
  });
  afterAll(() => kube.close());

  it("answers 401 with a Status without the right bearer token", async () => {
    const res = await get("/api/v1/namespaces/ci/pods/x", "wrong");
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ kind: "Status", code: 401, reason: "Unauthorized" });
  });

  it("serves a pod and a NotFound Status", async () => {
    kube.addPod({ name: "get-me", namespace: "ci", containers: ["workload"] });
    const pod: Json = await (await get("/api/v1/namespaces/ci/pods/get-me")).json();
    expect(pod.metadata).toMatchObject({ name: "get-me", namespace: "ci" });
    expect(pod.status.containerStatuses[0].state.running.startedAt).toMatch(/Z$/);
    const missing = await get("/api/v1/namespaces/ci/pods/nope");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as Json).reason).toBe("NotFound");
  });

  it("streams watch events, replays from a resourceVersion and refuses a compacted one", async () => {
    const pod = kube.addPod({ name: "watched", namespace: "ci", containers: ["workload"] });
    const selector = "fieldSelector=metadata.name%3Dwatched";
    const res = await get(`/api/v1/namespaces/ci/pods?watch=true&${selector}&timeoutSeconds=5`);
    const events = lines(res);

    const added: Json = JSON.parse((await events.next()).value as string);
    expect(added.type).toBe("ADDED");
    pod.terminate("workload", { exitCode: 137, reason: "OOMKilled" });
    const modified: Json = JSON.parse((await events.next()).value as string);
    expect(modified.type).toBe("MODIFIED");
    expect(modified.object.status.containerStatuses[0].state.terminated).toMatchObject({
      exitCode: 137,
      reason: "OOMKilled",
    });
    await events.return(undefined);

    const from = added.object.metadata.resourceVersion;
    const replay = lines(
      await get(`/api/v1/namespaces/ci/pods?watch=1&${selector}&resourceVersion=${from}`),
    );
    expect(JSON.parse((await replay.next()).value as string).type).toBe("MODIFIED");
    await replay.return(undefined);

    kube.compact();
    const stale = lines(
      await get(`/api/v1/namespaces/ci/pods?watch=1&${selector}&resourceVersion=${from}`),
    );
    const error: Json = JSON.parse((await stale.next()).value as string);
    expect(error).toMatchObject({ type: "ERROR", object: { kind: "Status", code: 410 } });
    expect((await stale.next()).done).toBe(true);
  });

  it("serves logs with timestamps, tailLines, sinceTime and limitBytes", async () => {
    const pod = kube.addPod({ name: "logs", namespace: "ci", containers: ["workload", "side"] });
    pod.logAt(new Date("2026-01-02T03:04:05.000Z"), "workload", "one");
    pod.logAt(1_767_323_046_123_456_789n, "workload", "two", "three");
    const base = "/api/v1/namespaces/ci/pods/logs/log";

    const noContainer = await get(base);
    expect(noContainer.status).toBe(400);
    expect(((await noContainer.json()) as Json).message).toContain(
      "choose one of: [workload side]",
    );

    const stamped = await (await get(`${base}?container=workload&timestamps=true`)).text();
    expect(stamped.split("\n")[0]).toBe("2026-01-02T03:04:05.000000000Z one");
    expect(stamped.split("\n")[1]).toBe("2026-01-02T03:04:06.123456789Z two");
    expect(await (await get(`${base}?container=workload&tailLines=1`)).text()).toBe("three\n");
    const since = encodeURIComponent("2026-01-02T03:04:06.123456789Z");
    expect(await (await get(`${base}?container=workload&sinceTime=${since}`)).text()).toBe(
      "two\nthree\n",
    );
    expect(await (await get(`${base}?container=workload&limitBytes=6`)).text()).toBe("one\ntw");
  });

  it("ends a follow once the container terminated and every line is sent", async () => {
    const pod = kube.addPod({ name: "follow", namespace: "ci", containers: ["workload"] });
    pod.log("workload", "before");
    const res = await get("/api/v1/namespaces/ci/pods/follow/log?follow=true");
    const received = lines(res);
    expect((await received.next()).value).toBe("before");
    pod.log("workload", "after");
    expect((await received.next()).value).toBe("after");
    pod.log("workload", "last");
    pod.terminate("workload", { exitCode: 0 });
    expect((await received.next()).value).toBe("last");
    expect((await received.next()).done).toBe(true);
  });

  it("drops open streams mid-stream on request", async () => {
    const pod = kube.addPod({ name: "drop", namespace: "ci", containers: ["workload"] });
    pod.log("workload", "kept");
    const received = lines(await get("/api/v1/namespaces/ci/pods/drop/log?follow=true"));
    expect((await received.next()).value).toBe("kept");
    expect(kube.openStreams("log")).toBe(1);
    expect(kube.dropConnections("log")).toBe(1);
    await expect(received.next()).rejects.toThrow();
  });

  it("cuts the next log stream mid-line after the bytes asked for", async () => {
    const pod = kube.addPod({ name: "cut", namespace: "ci", containers: ["workload"] });
    pod.log("workload", "first line", "second line");
    kube.dropNextLogStream({ afterBytes: 15 });
    const res = await get("/api/v1/namespaces/ci/pods/cut/log?follow=true");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const error = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return undefined;
        text += Buffer.from(value).toString();
      }
    })().catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect(text).toBe("first line\nseco");
    // The next stream is whole again.
    const again = await (await get("/api/v1/namespaces/ci/pods/cut/log")).text();
    expect(again).toBe("first line\nsecond line\n");
  });

  it("round-trips RFC 3339 times with nanoseconds", () => {
    const ns = parseRfc3339("2026-12-03T17:36:28.000000042+01:00");
    expect(formatTimestamp(ns)).toBe("2026-12-03T16:36:28.000000042Z");
  });
});
