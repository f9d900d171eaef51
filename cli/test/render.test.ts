import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type BuildEnvironment,
  buildPod,
  type KubeObject,
  loadDescription,
  renderObjects,
  repoCacheObjects,
} from "@buildpod/cli";
import { ConfigError } from "@buildpod/config";
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Pod } from "kubernetes-models/v1/Pod";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { describe, expect, it } from "vitest";
import { renderExamples } from "../../scripts/examples.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const QUICKSTART = path.join(ROOT, "examples", "quickstart", "build-environment.yaml");

// biome-ignore lint/suspicious/noExplicitAny: each model class takes its own object type
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  Pod,
  ConfigMap,
  ServiceAccount,
  Role,
  RoleBinding,
  PersistentVolumeClaim,
  CronJob,
};

function validate(objects: KubeObject[]): void {
  for (const object of objects) {
    const Model = MODELS[object.kind];
    expect(Model, `a schema for ${object.kind}`).toBeDefined();
    new (Model as NonNullable<typeof Model>)(object).validate();
  }
}

function description(mode: "native" | "classic"): BuildEnvironment {
  const env = loadDescription(QUICKSTART);
  env.spec.sidecarMode = mode;
  return env;
}

type Container = {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  restartPolicy?: string;
  startupProbe?: unknown;
};

function podOf(objects: KubeObject[]) {
  const pod = objects.find((o) => o.kind === "Pod") as unknown as {
    spec: {
      initContainers: Container[];
      containers: Container[];
      terminationGracePeriodSeconds: number;
    };
  };
  return pod.spec;
}

describe("render", () => {
  for (const mode of ["native", "classic"] as const) {
    it(`renders objects that pass the Kubernetes schema (${mode} sidecars)`, () => {
      const objects = renderObjects(description(mode));
      validate(objects);
      expect(objects.map((o) => o.kind)).toEqual([
        "ConfigMap",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Pod",
      ]);
    });
  }

  it("orders init containers and makes native sidecars restartable init containers with probes", () => {
    const spec = podOf(renderObjects(description("native")));
    expect(spec.initContainers.map((c) => [c.name, c.restartPolicy ?? "-"])).toEqual([
      ["agent-injector", "-"],
      ["repo-mirror", "-"],
      ["artifact-downloader", "-"],
      ["log-exporter", "Always"],
      ["artifact-uploader", "Always"],
      ["metrics-exporter", "Always"],
    ]);
    for (const sidecar of spec.initContainers.filter((c) => c.restartPolicy)) {
      expect(sidecar.startupProbe).toMatchObject({ httpGet: { path: "/readyz" } });
    }
    expect(spec.containers.map((c) => c.name)).toEqual(["workload"]);
    // Native sidecars drain one after another: 3 × 25 s, plus the workload's 10 s and 5 s slack.
    expect(spec.terminationGracePeriodSeconds).toBe(90);
  });

  it("puts classic sidecars beside the workload, watching the pod and the marker", () => {
    const spec = podOf(renderObjects(description("classic")));
    expect(spec.containers.map((c) => c.name)).toEqual([
      "workload",
      "log-exporter",
      "artifact-uploader",
      "metrics-exporter",
    ]);
    const workload = spec.containers[0] as Container & { command: string[] };
    expect(workload.command.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    for (const sidecar of spec.containers.slice(1)) {
      expect(sidecar.env).toContainEqual({ name: "BUILDPOD_WATCH_POD", value: "true" });
    }
    // Drains run together: one 25 s drain, plus the workload's 10 s and 5 s slack.
    expect(spec.terminationGracePeriodSeconds).toBe(40);
  });

  it("adds a custom sidecar built on the shared libraries, with the options it reads", () => {
    const env = description("native");
    env.spec.sidecars.push({
      name: "test-results",
      image: "ghcr.io/buildpod/custom-sidecar:0.1.0",
      command: [
        "/sbin/tini",
        "--",
        "node",
        "--no-maglev",
        "--v8-pool-size=1",
        "/opt/buildpod/custom-sidecar.mjs",
      ],
      env: { TEST_RESULTS_ENDPOINT: "https://reports.example.com/v1/summaries" },
      volumes: ["artifacts", "lifecycle"],
    });
    const objects = renderObjects(env);
    validate(objects);
    const sidecar = podOf(objects).initContainers.find((c) => c.name === "test-results");
    expect(sidecar).toMatchObject({ restartPolicy: "Always" });
    expect(sidecar?.startupProbe).toBeUndefined();
    expect(sidecar?.volumeMounts.map((m) => m.mountPath)).toEqual(["/artifacts", "/buildpod"]);

    const vars: Record<string, string> = { PATH: process.env.PATH ?? "" };
    for (const e of sidecar?.env ?? []) if (e.value !== undefined) vars[e.name] = e.value;
    const main = path.join(ROOT, "examples", "custom-sidecar", "src", "main.ts");
    const result = spawnSync(process.execPath, [main, "--print-config"], {
      env: vars,
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      endpoint: "https://reports.example.com/v1/summaries",
      lifecycleDir: "/buildpod",
      drainTimeout: 25_000,
      containerName: "test-results",
    });
  });

  it("renders the repo cache's claim and sync CronJob", () => {
    const objects = repoCacheObjects(description("native"));
    validate(objects);
    expect(objects.map((o) => o.kind)).toEqual(["PersistentVolumeClaim", "CronJob"]);
  });

  it("mounts read-only every volume a sidecar only reads", () => {
    const spec = podOf(renderObjects(description("native")));
    const mountOf = (container: string, volume: string) =>
      spec.initContainers
        .find((c) => c.name === container)
        ?.volumeMounts.find((m) => m.name === volume);
    expect(mountOf("log-exporter", "logs")?.readOnly).toBe(true);
    expect(mountOf("artifact-uploader", "artifacts")?.readOnly).toBe(true);
    expect(mountOf("metrics-exporter", "metrics")?.readOnly).toBe(true);
    expect(mountOf("repo-mirror", "repo-cache")?.readOnly).toBe(true);
  });

  it("keeps examples/kubernetes equal to a fresh render", () => {
    for (const [name, content] of Object.entries(renderExamples())) {
      const committed = readFileSync(path.join(ROOT, "examples", "kubernetes", name), "utf8");
      expect(committed, `examples/kubernetes/${name} is stale: run \`pnpm run examples\``).toBe(
        content,
      );
    }
  });
});

/**
 * Writes every ConfigMap volume of the rendered pod into a folder of its own, as the kubelet
 * would mount it, from the ConfigMap objects rendered beside the pod. Returns the folder of
 * each volume by name.
 */
function mountConfigMaps(objects: KubeObject[]): Map<string, string> {
  const pod = objects.find((o) => o.kind === "Pod") as unknown as {
    spec: { volumes: { name: string; configMap?: { name: string; items: ConfigMapItem[] } }[] };
  };
  const dirs = new Map<string, string>();
  for (const volume of pod.spec.volumes) {
    if (!volume.configMap) continue;
    const { name, items } = volume.configMap;
    const map = objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === name) as
      | { data: Record<string, string> }
      | undefined;
    expect(map, `the ConfigMap ${name} is rendered`).toBeDefined();
    const dir = mkdtempSync(path.join(tmpdir(), `render-${volume.name}-`));
    for (const item of items) {
      writeFileSync(
        path.join(dir, item.path),
        (map as { data: Record<string, string> }).data[item.key] ?? "",
      );
    }
    dirs.set(volume.name, dir);
  }
  return dirs;
}

type ConfigMapItem = { key: string; path: string };

/** A path under one of the container's ConfigMap mounts, moved to where that volume was written. */
function onLocalMount(value: string, c: Container, dirs: Map<string, string>): string {
  for (const m of c.volumeMounts) {
    const dir = dirs.get(m.name);
    if (dir && value.startsWith(`${m.mountPath}/`)) return dir + value.slice(m.mountPath.length);
  }
  return value;
}

describe("render cross-check", () => {
  /**
   * Every buildpod container of the rendered pod, started from its bundle with exactly the
   * rendered args and env (mount paths as they are) and `--print-config`, loads its config:
   * every option it needs is there, no env var is one it does not know, and every path it was
   * given lies on one of its mounts.
   */
  for (const mode of ["native", "classic"] as const) {
    it(`gives every container the options it reads (${mode} sidecars)`, () => {
      const objects = renderObjects(description(mode));
      const spec = podOf(objects);
      const ours = [...spec.initContainers, ...spec.containers].filter((c) =>
        c.image.startsWith("ghcr.io/buildpod/"),
      );
      expect(ours.length).toBeGreaterThanOrEqual(6);
      const tokenDir = mkdtempSync(path.join(tmpdir(), "render-token-"));
      writeFileSync(path.join(tokenDir, "token"), "not-a-real-token\n");
      const configMapDirs = mountConfigMaps(objects);
      for (const c of ours) {
        const program = (c.image.split("/").at(-1) as string).split(":")[0] as string;
        const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
        for (const e of c.env ?? []) {
          if (e.value !== undefined) env[e.name] = onLocalMount(e.value, c, configMapDirs);
        }
        // Files the kubelet would mount (the token Secret) must exist for the config to load.
        if (env.AGENT_INJECTOR_TOKEN_FILE)
          env.AGENT_INJECTOR_TOKEN_FILE = path.join(tokenDir, "token");
        // The downward API fills these in a pod.
        env.POD_NAME = "buildpod-selftest";
        env.POD_NAMESPACE = "ci";
        env.KUBERNETES_SERVICE_HOST = "10.0.0.1";
        env.KUBERNETES_SERVICE_PORT = "443";
        const bundle = path.join(ROOT, "containers", program, "src", "main.ts");
        const result = spawnSync(process.execPath, [bundle, ...(c.args ?? []), "--print-config"], {
          env,
          encoding: "utf8",
        });
        expect(result.stderr, `${c.name}: ${result.stderr}`).toBe("");
        expect(result.status, `${c.name} --print-config`).toBe(0);
        const mounts = c.volumeMounts.map((m) => m.mountPath);
        for (const e of c.env ?? []) {
          const value = e.value ?? "";
          if (!value.startsWith("/") || e.name === "AGENT_INJECTOR_TOKEN_FILE") continue;
          const onMount = mounts.some((m) => value === m || value.startsWith(`${m}/`));
          expect(onMount, `${c.name}: ${e.name}=${value} is on no mount`).toBe(true);
        }
      }
    });
  }

  it("reports a bad description with file, line and a suggestion", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "render-bad-"));
    const file = path.join(dir, "bad.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: buildpod.dev/v1",
        "kind: BuildEnvironment",
        "metadata: { name: Bad_Name }",
        "spec:",
        "  workload: { image: x, command: [make] }",
        "  sidecarMod: classic",
      ].join("\n"),
    );
    expect(() => loadDescription(file)).toThrow(ConfigError);
    try {
      loadDescription(file);
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toMatch(/metadata\.name \(.*bad\.yaml line 3\): expected a DNS label/);
      expect(message).toMatch(
        /spec\.sidecarMod \(.*bad\.yaml line 6\): expected a known key.*did you mean "sidecarMode"/,
      );
    }
  });

  it("refuses repository fields that repo-mirror would refuse in the pod", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "render-repo-"));
    const file = path.join(dir, "repo.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: buildpod.dev/v1",
        "kind: BuildEnvironment",
        "metadata: { name: r }",
        "spec:",
        "  workload: { image: x, command: [make] }",
        "  repository:",
        "    url: '--upload-pack=touch /tmp/pwned'",
        "    commit: HEAD~3",
      ].join("\n"),
    );
    expect(() => loadDescription(file)).toThrow(
      /spec\.repository\.url \(.*line 7\): expected a repository URL/,
    );
    expect(() => loadDescription(file)).toThrow(
      /spec\.repository\.commit \(.*line 8\): expected a commit in hex/,
    );
    writeFileSync(
      file,
      readFileSync(file, "utf8")
        .replace("'--upload-pack=touch /tmp/pwned'", "github.com/example/app")
        .replace("HEAD~3", "HEAD"),
    );
    expect(() => loadDescription(file)).toThrow(
      /spec\.repository\.url \(.*line 7\): expected a repository URL: https:\/\/host\/org\/repo, .*got "github\.com\/example\/app"/,
    );
  });

  it("builds the same containers for the local run, with local stores", () => {
    const pod = buildPod(description("native"), {
      kind: "local",
      stateDir: "/state",
      podLogsDir: "/run/pod-logs/ci_selftest_1",
      uploadStore: "/state/builds/b2/artifacts",
      downloadStore: "/state/builds/b1/artifacts",
    });
    const rendered = podOf(renderObjects(description("native")));
    expect([...pod.initContainers, ...pod.sidecars].map((c) => c.name)).toEqual(
      rendered.initContainers.map((c) => c.name),
    );
    const uploader = pod.sidecars.find((c) => c.name === "artifact-uploader");
    expect(uploader?.env.ARTIFACT_UPLOADER_STORE).toBe("dir:/state/builds/b2/artifacts");
    expect(pod.sidecars.find((c) => c.name === "log-exporter")?.env.LOG_EXPORTER_CRI_LOG_DIR).toBe(
      "/run/pod-logs/ci_selftest_1/workload",
    );
  });
});
