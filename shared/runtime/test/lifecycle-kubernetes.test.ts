import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type FakeKubernetes,
  type FakeKubernetesOptions,
  startFakeKubernetes,
} from "../../../test/fakes/kubernetes.ts";
import { makeTestCa } from "../../../test/fakes/tls.ts";
import { createLifecycle, type PodWatchTarget, writeMarker } from "../src/lifecycle/index.ts";
import { captureLogger } from "./fixtures/capture-logger.ts";

const OOM = { exitCode: 137, reason: "OOMKilled" };
const OOM_DETAIL = "workload container terminated: OOMKilled, exit code 137";

describe("pod watch", () => {
  let dir: string;
  let tokenFile: string;
  let n = 0;
  const fakes: FakeKubernetes[] = [];

  /** A fake API with one running pod, and a lifecycle watching it. */
  const setup = async (
    fakeOpts: FakeKubernetesOptions = {},
    overrides: Partial<PodWatchTarget> = {},
  ) => {
    const kube = await startFakeKubernetes({ token: "t0ken", ...fakeOpts });
    fakes.push(kube);
    const name = `job-${++n}`;
    const pod = kube.addPod({ name, namespace: "ci", containers: ["workload", "sidecar"] });
    const logger = captureLogger();
    const target = {
      apiUrl: kube.url,
      tokenFile,
      namespace: "ci",
      podName: name,
      container: "workload",
    };
    const lifecycle = createLifecycle({
      drainTimeoutMs: 1000,
      signals: false,
      logger,
      kubernetes: { ...target, ...overrides },
    });
    const watches = (count = 1) =>
      kube.waitForRequest((r) => r.query.watch === "true" && r.status === 200, { count });
    return { kube, pod, logger, lifecycle, watches, target };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lifecycle-kube-"));
    tokenFile = join(dir, "token");
    await writeFile(tokenFile, "t0ken\n");
  });
  afterAll(async () => {
    await Promise.all(fakes.map((f) => f.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it("reports the workload container OOMKilled, with its exit code", async () => {
    const { pod, lifecycle, watches } = await setup();
    try {
      const request = await watches();
      expect(request.path).toBe("/api/v1/namespaces/ci/pods");
      expect(request.query).toMatchObject({
        fieldSelector: `metadata.name=${pod.name}`,
        allowWatchBookmarks: "true",
      });
      pod.terminate("sidecar", { exitCode: 0 });
      pod.terminate("workload", OOM);
      expect(await lifecycle.finished).toEqual({
        reason: "kubernetes",
        exitCode: 137,
        detail: OOM_DETAIL,
      });
    } finally {
      await lifecycle.close();
    }
  });

  it("sees a container that terminated before the watch started", async () => {
    const kube = await startFakeKubernetes({ token: "t0ken" });
    fakes.push(kube);
    kube
      .addPod({ name: "early", namespace: "ci", containers: ["workload"] })
      .terminate("workload", { exitCode: 1 });
    const target = {
      apiUrl: kube.url,
      tokenFile,
      namespace: "ci",
      podName: "early",
      container: "workload",
    };
    const lifecycle = createLifecycle({ drainTimeoutMs: 1000, signals: false, kubernetes: target });
    try {
      expect(await lifecycle.finished).toEqual({
        reason: "kubernetes",
        exitCode: 1,
        detail: "workload container terminated: Error, exit code 1",
      });
    } finally {
      await lifecycle.close();
    }
  });

  it("resumes from the last resourceVersion after a dropped connection", async () => {
    const { kube, pod, logger, lifecycle, watches } = await setup();
    try {
      await watches();
      const seen = `${pod.resourceVersion}`;
      expect(kube.dropConnections("watch")).toBe(1);
      const again = await watches(2);
      expect(again.query.resourceVersion).toBe(seen);
      pod.terminate("workload", OOM);
      expect((await lifecycle.finished).detail).toBe(OOM_DETAIL);
      expect(logger.records.some((r) => r.level === "warn" && r.fields.attempt === 1)).toBe(true);
    } finally {
      await lifecycle.close();
    }
  });

  it("resumes from a BOOKMARK's resourceVersion", async () => {
    const { kube, pod, lifecycle, watches } = await setup();
    try {
      await watches();
      kube.addPod({ name: "unrelated", namespace: "ci", containers: ["x"] });
      kube.bookmark();
      const bookmarked = `${pod.resourceVersion + 1}`;
      expect(kube.endStreams("watch")).toBe(1);
      expect((await watches(2)).query.resourceVersion).toBe(bookmarked);
      pod.terminate("workload", OOM);
      expect((await lifecycle.finished).exitCode).toBe(137);
    } finally {
      await lifecycle.close();
    }
  });

  it.each([
    ["an ERROR event", "event"],
    ["HTTP 410", "http"],
  ] as const)("starts over from the current state after %s (410 Gone)", async (_, goneAs) => {
    const { kube, pod, logger, lifecycle, watches } = await setup({ goneAs });
    try {
      await watches();
      // While the watch is down, its resourceVersion is compacted away and the workload dies.
      kube.dropConnections("watch");
      kube.compact();
      pod.terminate("workload", OOM);

      expect(await lifecycle.finished).toEqual({
        reason: "kubernetes",
        exitCode: 137,
        detail: OOM_DETAIL,
      });
      const watchRequests = kube.requests.filter((r) => r.query.watch === "true");
      const stale = watchRequests.findIndex((r) => r.query.resourceVersion !== undefined);
      expect(stale).toBeGreaterThan(0);
      expect(watchRequests[stale + 1]?.query.resourceVersion).toBeUndefined();
      expect(logger.records.some((r) => r.level === "info" && /expired/.test(r.msg))).toBe(true);
    } finally {
      await lifecycle.close();
    }
  });

  it("re-reads a rotated token and names the token file, never the token, on a 401", async () => {
    const rotating = join(dir, "rotating-token");
    await writeFile(rotating, "old-token");
    const { kube, pod, logger, lifecycle, watches } = await setup({}, { tokenFile: rotating });
    try {
      await kube.waitForRequest((r) => r.status === 401);
      await writeFile(rotating, "t0ken");
      await watches();
      pod.terminate("workload", OOM);
      expect((await lifecycle.finished).exitCode).toBe(137);
      const unauthorized = logger.records.find((r) => /401/.test(r.msg));
      expect(unauthorized?.msg).toContain(rotating);
      expect(JSON.stringify(logger.records)).not.toMatch(/old-token|t0ken/);
    } finally {
      await lifecycle.close();
    }
  });

  it("verifies the API server with the cluster CA over HTTPS", async () => {
    const tls = await makeTestCa(await mkdtemp(join(dir, "ca-")));
    const { kube, pod, lifecycle, watches, target } = await setup({ tls }, { caFile: tls.caFile });
    expect(kube.url).toMatch(/^https:/);
    const logger = captureLogger();
    const untrusted = createLifecycle({
      drainTimeoutMs: 1000,
      signals: false,
      logger,
      kubernetes: target,
    });
    try {
      await watches();
      await waitUntil(() => logger.records.some((r) => r.level === "warn"));
      expect(logger.records[0]?.msg).toContain("certificate was not accepted");
      pod.terminate("workload", OOM);
      expect((await lifecycle.finished).detail).toBe(OOM_DETAIL);
    } finally {
      await Promise.all([lifecycle.close(), untrusted.close()]);
    }
  });
});

describe("pod watch stream framing", () => {
  // A bare server, to control the bytes on the wire: proxies and HTTP/2 split events anywhere.
  it("joins an event split across chunks and survives a line that is not JSON", async () => {
    let connections = 0;
    const server = createServer((_req, res) => {
      connections += 1;
      res.writeHead(200, { "content-type": "application/json" });
      if (connections === 1) {
        res.end("this is not json\n");
        return;
      }
      const pod = {
        metadata: { resourceVersion: "7" },
        status: {
          containerStatuses: [{ name: "workload", state: { terminated: { exitCode: 2 } } }],
        },
      };
      const line = `${JSON.stringify({ type: "ADDED", object: pod })}\n`;
      res.write(line.slice(0, 25));
      setTimeout(() => res.write(line.slice(25)), 100).unref();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const dir = await mkdtemp(join(tmpdir(), "framing-"));
    await writeFile(join(dir, "token"), "x");
    const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const logger = captureLogger();
    const lifecycle = createLifecycle({
      drainTimeoutMs: 1000,
      signals: false,
      logger,
      kubernetes: {
        apiUrl,
        tokenFile: join(dir, "token"),
        namespace: "ci",
        podName: "p",
        container: "workload",
      },
    });
    try {
      expect(await lifecycle.finished).toEqual({
        reason: "kubernetes",
        exitCode: 2,
        detail: "workload container terminated, exit code 2",
      });
      expect(logger.records[0]?.msg).toMatch(/could not parse a watch event/);
    } finally {
      await lifecycle.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("pod watch against an API server that never answers", () => {
  it("delays neither the marker, nor the drain deadline, nor close()", async () => {
    const server = createServer(() => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const dir = await mkdtemp(join(tmpdir(), "silent-api-"));
    await writeFile(join(dir, "token"), "x");
    const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const doneFile = join(dir, "workload-finished");
    const lifecycle = createLifecycle({
      doneFile,
      drainTimeoutMs: 300,
      signals: false,
      kubernetes: {
        apiUrl,
        tokenFile: join(dir, "token"),
        namespace: "ci",
        podName: "p",
        container: "workload",
      },
    });
    try {
      const toldAt = performance.now();
      await writeMarker(doneFile, 0);
      expect((await lifecycle.finished).reason).toBe("done-file");
      const drain = lifecycle.drainSignal();
      await new Promise((resolve) => drain.addEventListener("abort", resolve, { once: true }));
      expect(performance.now() - toldAt).toBeLessThan(20_000);
      const closing = performance.now();
      await lifecycle.close();
      expect(performance.now() - closing).toBeLessThan(10_000);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
