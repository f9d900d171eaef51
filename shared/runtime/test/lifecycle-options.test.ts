import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "@buildpod/config";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lifecycleOptions, resolveLifecycleOptions } from "../src/lifecycle/index.ts";

describe("lifecycle options", () => {
  let serviceAccountDir: string;
  const load = (env: Record<string, string>) =>
    loadConfig(lifecycleOptions, { argv: [], env, envPrefix: "TEST" }).config;

  beforeAll(async () => {
    serviceAccountDir = await mkdtemp(join(tmpdir(), "serviceaccount-"));
    await writeFile(join(serviceAccountDir, "namespace"), "buildkite\n");
  });
  afterAll(() => rm(serviceAccountDir, { recursive: true, force: true }));

  it("defaults the marker into the lifecycle directory and the drain to 25 s", async () => {
    const resolved = await resolveLifecycleOptions(load({}), { lifecycleDir: "/lc", env: {} });
    expect(resolved).toEqual({ doneFile: "/lc/workload-finished", drainTimeoutMs: 25_000 });
  });

  it("finds the API server, credentials and namespace as in-cluster clients do", async () => {
    const config = load({
      BUILDPOD_WATCH_POD: "true",
      BUILDPOD_DRAIN_TIMEOUT: "10s",
      BUILDPOD_SERVICE_ACCOUNT_DIR: serviceAccountDir,
      POD_NAME: "job-1",
    });
    const env = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" };
    const resolved = await resolveLifecycleOptions(config, { lifecycleDir: "/lc", env });
    expect(resolved.drainTimeoutMs).toBe(10_000);
    expect(resolved.kubernetes).toEqual({
      apiUrl: "https://[fd00::1]:443",
      tokenFile: join(serviceAccountDir, "token"),
      caFile: join(serviceAccountDir, "ca.crt"),
      namespace: "buildkite",
      podName: "job-1",
      container: "workload",
    });
  });

  it("names every value the pod watch is missing, at once", async () => {
    const config = load({
      BUILDPOD_WATCH_POD: "true",
      BUILDPOD_SERVICE_ACCOUNT_DIR: "/nonexistent",
    });
    const error = await resolveLifecycleOptions(config, { lifecycleDir: "/lc", env: {} }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.key)).toEqual([
      "kubernetesApi",
      "podName",
      "podNamespace",
    ]);
    expect((error as ConfigError).message).toContain("POD_NAME");
  });
});
