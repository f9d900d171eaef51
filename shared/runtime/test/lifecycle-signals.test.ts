import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeKubernetes, startFakeKubernetes } from "../../../test/fakes/kubernetes.ts";
import { writeMarker } from "../src/lifecycle/index.ts";
import { Child } from "./fixtures/child.ts";

const FIXTURE = join(import.meta.dirname, "fixtures", "lifecycle-child.ts");

// Signals can only be tested in a process of their own: each case runs the fixture program,
// which prints what its lifecycle reports as JSON lines.
describe("lifecycle in a child process", () => {
  let dir: string;
  let kube: FakeKubernetes;
  const children: Child[] = [];
  const start = (options: Record<string, unknown>) => {
    const child = new Child(FIXTURE, [JSON.stringify(options)]);
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lifecycle-signals-"));
    kube = await startFakeKubernetes();
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.stop();
  });
  afterAll(async () => {
    await kube.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("finishes on SIGTERM and aborts the drain signal after the drain timeout", async () => {
    const child = start({ drainTimeoutMs: 500, hardStopExits: true, busyUntilDrained: true });
    await child.event("ready");
    const signalledAt = performance.now();
    child.process.kill("SIGTERM");

    const finished = await child.event("finished");
    expect(finished).toMatchObject({ reason: "signal", detail: "received SIGTERM" });
    expect(finished.exitCode).toBeUndefined();
    const drained = await child.event("drained");
    expect(drained.reason).toBe("TimeoutError");
    // Loose bounds: the drain timer starts after the signal arrived, so it cannot fire sooner
    // than the timeout after the kill; a loaded machine may make it late, not minutes late.
    const elapsed = performance.now() - signalledAt;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(20_000);
    expect(await child.exited).toEqual({ code: 0, signal: null });
  });

  it("calls onHardStop on a second signal, which exits 130 at once", async () => {
    const child = start({ drainTimeoutMs: 600_000, hardStopExits: true, busyUntilDrained: true });
    await child.event("ready");
    child.process.kill("SIGINT");
    expect((await child.event("finished")).detail).toBe("received SIGINT");

    child.process.kill("SIGTERM");
    await child.event("hard-stop");
    expect(await child.exited).toEqual({ code: 130, signal: null });
    expect(child.events.some((e) => e.event === "drained")).toBe(false);
  });

  it("without onHardStop lets a second signal kill the process", async () => {
    const child = start({ drainTimeoutMs: 600_000, busyUntilDrained: true });
    await child.event("ready");
    child.process.kill("SIGTERM");
    await child.event("finished");
    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("treats the first signal after the marker as the normal stop and the next as hard", async () => {
    const doneFile = join(dir, "after-marker", "workload-finished");
    const child = start({
      doneFile,
      pollIntervalMs: 200,
      drainTimeoutMs: 600_000,
      hardStopExits: true,
      busyUntilDrained: true,
    });
    await child.event("ready");
    await writeMarkerIn(doneFile, 2);
    expect(await child.event("finished")).toMatchObject({ reason: "done-file", exitCode: 2 });

    child.process.kill("SIGTERM");
    await child.waitFor((e) => e.event === "log" && /while draining/.test(e.msg));
    expect(child.process.exitCode).toBeNull();
    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 130, signal: null });
  });

  it("leaves no handle open after close(), with every detection running", async () => {
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, kube.token);
    kube.addPod({ name: "handles", namespace: "ci", containers: ["workload"] });
    const doneFile = join(dir, "handles", "workload-finished");
    const child = start({
      doneFile,
      pollIntervalMs: 200,
      drainTimeoutMs: 100,
      busyUntilDrained: true,
      kubernetes: {
        apiUrl: kube.url,
        tokenFile,
        namespace: "ci",
        podName: "handles",
        container: "workload",
      },
    });
    await child.event("ready");
    await kube.waitForRequest((r) => r.query.fieldSelector === "metadata.name=handles");
    await writeMarkerIn(doneFile, 0);

    expect((await child.event("finished")).reason).toBe("done-file");
    const closed = await child.event("closed");
    expect(closed.handles).not.toContain("Timeout");
    expect(closed.handles).not.toContain("TCPSocketWrap");
    expect(closed.handles).not.toContain("FSEventWrap");
    // The real proof: the child exits by itself, with nothing left holding its event loop.
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(kube.openStreams("watch")).toBe(0);
  });
});

async function writeMarkerIn(file: string, exitCode: number): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  await writeMarker(file, exitCode);
}
