import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeKubernetes, startFakeKubernetes } from "../../../test/fakes/kubernetes.ts";
import { ExitCode, writeMarker } from "../src/index.ts";
import { Child, type ChildEvent } from "./fixtures/child.ts";

const SIDECAR = join(import.meta.dirname, "fixtures", "skeleton-sidecar.ts");
const DRAIN_MS = 2000;

// Issue 2, "Done when": a sidecar told that the workload finished, while its sink never
// answers, exits within its drain deadline with INCOMPLETE, its summary line and status file;
// whether it learnt of the end from the marker file, SIGTERM or the pod watch. A second
// signal exits at once with INTERRUPTED.
describe("sidecar skeleton", () => {
  let root: string;
  let sink: Server;
  let sinkUrl: string;
  let sinkRequests = 0;
  let kube: FakeKubernetes;
  let n = 0;
  const children: Child[] = [];

  /** Runs the skeleton with its own lifecycle directory; resolves once it has started. */
  const start = async (env: Record<string, string> = {}) => {
    const lifecycleDir = join(root, `run-${++n}`);
    await mkdir(lifecycleDir);
    const child = new Child(SIDECAR, ["--sink", sinkUrl], {
      BUILDPOD_LIFECYCLE_DIR: lifecycleDir,
      BUILDPOD_DRAIN_TIMEOUT: `${DRAIN_MS}ms`,
      ...env,
    });
    children.push(child);
    await child.waitFor((e) => e.msg === "starting");
    return { child, lifecycleDir };
  };

  /** Waits for the exit and checks the summary line against the status file. */
  const outcome = async (child: Child, lifecycleDir: string) => {
    const exited = await child.exited;
    const statusFile = join(lifecycleDir, "status", "skeleton.json");
    const text = await readFile(statusFile, "utf8").catch((err: Error) => {
      const output = JSON.stringify({
        exited,
        events: child.events,
        stderr: child.stderr.join(""),
      });
      throw new Error(`no status file ${statusFile} (${err.message}); the child: ${output}`);
    });
    const status = JSON.parse(text);
    const summary = child.events.find((e) => e.msg === "summary") as ChildEvent;
    expect(status).toMatchObject({ container: "skeleton", exit_code: exited.code });
    expect(summary.summary).toEqual(status.summary);
    return { code: exited.code, status };
  };

  /** From "told finished" to exit: at least the drain (it kept trying), and bounded by it. */
  const expectDrained = (startedAt: number) => {
    const elapsed = performance.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(DRAIN_MS - 100);
    // Generous: a loaded 2-core machine adds seconds, but never the minutes a hung sink would.
    expect(elapsed).toBeLessThan(DRAIN_MS + 20_000);
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "sidecar-skeleton-"));
    // Accepts connections and requests, and never answers any of them.
    sink = createServer(() => {
      sinkRequests += 1;
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/records`;
    kube = await startFakeKubernetes({ token: "skeleton-token" });
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.stop();
  });
  afterAll(async () => {
    sink.closeAllConnections();
    await new Promise((resolve) => sink.close(resolve));
    await kube.close();
    await rm(root, { recursive: true, force: true });
  });

  it("drains and exits INCOMPLETE after the marker file appears", async () => {
    const { child, lifecycleDir } = await start();
    const before = sinkRequests;
    const toldAt = performance.now();
    await writeMarker(join(lifecycleDir, "workload-finished"), 0);

    const { code, status } = await outcome(child, lifecycleDir);
    expectDrained(toldAt);
    expect(code).toBe(ExitCode.INCOMPLETE);
    expect(status.exit_reason).toBe("INCOMPLETE");
    expect(status.summary).toMatchObject({
      finished: { reason: "done-file", exitCode: 0 },
      undelivered: 1,
    });
    // It kept trying to deliver while it drained.
    expect(sinkRequests - before).toBeGreaterThanOrEqual(2);
  });

  it("drains and exits INCOMPLETE after SIGTERM", async () => {
    const { child, lifecycleDir } = await start();
    const toldAt = performance.now();
    child.process.kill("SIGTERM");

    const { code, status } = await outcome(child, lifecycleDir);
    expectDrained(toldAt);
    expect(code).toBe(ExitCode.INCOMPLETE);
    expect(status.summary.finished).toEqual({ reason: "signal", detail: "received SIGTERM" });
  });

  it("drains and exits INCOMPLETE when the pod watch sees the workload OOMKilled", async () => {
    const serviceAccountDir = join(root, "serviceaccount");
    await mkdir(serviceAccountDir, { recursive: true });
    await writeFile(join(serviceAccountDir, "token"), kube.token);
    await writeFile(join(serviceAccountDir, "namespace"), "ci\n");
    const pod = kube.addPod({
      name: "job-oom",
      namespace: "ci",
      containers: ["workload", "skeleton"],
    });

    const { child, lifecycleDir } = await start({
      BUILDPOD_WATCH_POD: "true",
      BUILDPOD_KUBERNETES_API: kube.url,
      BUILDPOD_SERVICE_ACCOUNT_DIR: serviceAccountDir,
      POD_NAME: "job-oom",
    });
    await kube.waitForRequest((r) => r.query.fieldSelector === "metadata.name=job-oom");
    const toldAt = performance.now();
    pod.terminate("workload", { exitCode: 137, reason: "OOMKilled" });

    const { code, status } = await outcome(child, lifecycleDir);
    expectDrained(toldAt);
    expect(code).toBe(ExitCode.INCOMPLETE);
    expect(status.summary.finished).toEqual({
      reason: "kubernetes",
      exitCode: 137,
      detail: "workload container terminated: OOMKilled, exit code 137",
    });
  });

  it("exits at once with INTERRUPTED on a second signal", async () => {
    const { child, lifecycleDir } = await start({ BUILDPOD_DRAIN_TIMEOUT: "10m" });
    child.process.kill("SIGTERM");
    await child.waitFor((e) => typeof e.msg === "string" && e.msg.startsWith("workload finished"));
    const secondAt = performance.now();
    child.process.kill("SIGTERM");

    const { code, status } = await outcome(child, lifecycleDir);
    expect(code).toBe(ExitCode.INTERRUPTED);
    expect(status.exit_reason).toBe("INTERRUPTED");
    // "At once": far inside the ten-minute drain it would otherwise have waited out.
    expect(performance.now() - secondAt).toBeLessThan(20_000);
  });
});
