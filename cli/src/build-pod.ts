import {
  type ContainerModel,
  type MountModel,
  mount,
  type PodModel,
  type StandardVolume,
  VOLUME_PATHS,
  type VolumeModel,
  WORKLOAD_PATH_ENV,
} from "./pod.ts";
import type { BuildEnvironment, CustomSidecar } from "./schema.ts";

/**
 * Where the pod runs. `kubernetes` renders for a cluster; `local` runs every container on this
 * machine and swaps what only a cluster has for embedded defaults: the `dir` artifact store,
 * the `file` log sink, the workload's output from CRI log files instead of the API.
 */
export type Target =
  | { kind: "kubernetes" }
  | {
      kind: "local";
      /** Kept across runs: the log sinks file, earlier builds' artifacts. */
      stateDir: string;
      /** The pod's CRI log folder (the kubelet's /var/log/pods/<ns>_<pod>_<uid>). */
      podLogsDir: string;
      /** The `dir` store this run uploads to. */
      uploadStore: string;
      /** The `dir` store of the previous run, which this run downloads from. */
      downloadStore: string;
    };

const CONFIG_DIR = "/etc/buildpod";
const TOKEN_DIR = "/var/run/secrets/buildkite";

/** Ports of the sidecars' `/readyz` servers (startup probes), one each. */
const FIRST_READY_PORT = 9401;

/**
 * Requests from the peak RSS each container reached in its benchmark (bench/*.bench.ts, Node 24,
 * figures in each issue's note), rounded up: a request below the real peak makes a sidecar the
 * node's first OOM victim. repo-mirror's git runs in child processes and is counted in.
 *   agent-injector ~80 MiB; repo-mirror ~80 MiB + git; artifact-downloader 161 MiB and
 *   artifact-uploader 181 MiB moving a 1 GiB file; metrics-exporter 217 MiB serving 200,000
 *   series; log-exporter 110 MiB idle, 421 MiB with a 1 GiB backlog.
 */
const REQUESTS: Record<string, { cpu: string; memory: string }> = {
  "repo-mirror": { cpu: "500m", memory: "512Mi" },
  "artifact-downloader": { cpu: "250m", memory: "192Mi" },
  "agent-injector": { cpu: "50m", memory: "96Mi" },
  "log-exporter": { cpu: "250m", memory: "256Mi" },
  "artifact-uploader": { cpu: "250m", memory: "192Mi" },
  "metrics-exporter": { cpu: "100m", memory: "256Mi" },
};

/** The pod a description asks for, for the given target. */
export function buildPod(env: BuildEnvironment, target: Target): PodModel {
  const { spec } = env;
  const image = (program: string) => `${spec.images.registry}/${program}:${spec.images.tag}`;
  const common = { BUILDPOD_LIFECYCLE_DIR: VOLUME_PATHS.lifecycle, ...spec.buildkite };
  const ctx: Context = {
    env,
    target,
    image,
    common,
    volumes: new Map(),
    nextPort: FIRST_READY_PORT,
  };
  addVolume(ctx, { name: "lifecycle", source: { kind: "emptyDir" } });

  const initContainers = [agentInject(ctx), repoMirror(ctx), artifactDownloader(ctx)].filter(
    isDefined,
  );
  const sidecars = [
    logExporter(ctx),
    artifactUploader(ctx),
    metricsExporter(ctx),
    agentRun(ctx),
    ...spec.sidecars.map((s) => customSidecar(ctx, s)),
  ].filter(isDefined);
  const workload = workloadContainer(ctx);

  // Sidecars drain one after another in native mode (reverse order, one SIGTERM at a time),
  // together in classic mode; the workload's own stop comes first either way.
  const drains = sidecars.map((s) => s.drainSeconds ?? spec.drainSeconds);
  const drainTotal = spec.sidecarMode === "native" ? sum(drains) : Math.max(0, ...drains);
  return {
    name: env.metadata.name,
    namespace: env.metadata.namespace,
    labels: env.metadata.labels,
    sidecarMode: spec.sidecarMode,
    terminationGracePeriodSeconds: spec.workload.stopSeconds + drainTotal + 5,
    needsApiAccess: sidecars.some((s) => s.fieldEnv !== undefined),
    volumes: [...ctx.volumes.values()],
    initContainers,
    sidecars,
    workload,
  };
}

interface Context {
  env: BuildEnvironment;
  target: Target;
  image(program: string): string;
  common: Record<string, string>;
  volumes: Map<string, VolumeModel>;
  nextPort: number;
}

function isDefined<T>(value: T | undefined): value is T {
  return value !== undefined;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function addVolume(ctx: Context, volume: VolumeModel): void {
  if (!ctx.volumes.has(volume.name)) ctx.volumes.set(volume.name, volume);
}

/** Declares the emptyDir volumes a container mounts. */
function mounts(ctx: Context, ...list: MountModel[]): MountModel[] {
  for (const m of list) {
    if (m.volume in VOLUME_PATHS && m.volume !== "repo-cache") {
      addVolume(ctx, { name: m.volume, source: { kind: "emptyDir" } });
    }
  }
  return list;
}

function local(ctx: Context) {
  return ctx.target.kind === "local" ? ctx.target : undefined;
}

function ours(
  ctx: Context,
  program: string,
  rest: Omit<ContainerModel, "image" | "program">,
): ContainerModel {
  // Two containers may run one program (agent-injector inject and run): the container name
  // keeps their status files apart.
  const env = { ...rest.env, BUILDPOD_CONTAINER_NAME: rest.name };
  const requests = REQUESTS[program];
  const resources = requests ? { resources: { requests } } : {};
  return { ...rest, env, image: ctx.image(program), program, ...resources };
}

const POD_FIELDS = { POD_NAME: "metadata.name", POD_NAMESPACE: "metadata.namespace" };

/**
 * One of our sidecars: its drain deadline, its `/readyz` port (the native startup probe), and
 * how it learns that the workload ended. A classic sidecar gets no SIGTERM when the workload
 * ends: it watches the marker the wrapped workload writes, and the pod, which also catches a
 * workload killed before it could write anything (OOMKilled).
 */
function sidecar(
  ctx: Context,
  program: string,
  fields: Pick<ContainerModel, "name" | "args" | "env" | "mounts" | "ports"> & {
    readsPod?: boolean;
  },
): ContainerModel {
  const readyPort = ctx.nextPort++;
  const env: Record<string, string> = {
    ...ctx.common,
    BUILDPOD_DRAIN_TIMEOUT: `${ctx.env.spec.drainSeconds}s`,
    BUILDPOD_HTTP_PORT: String(readyPort),
    BUILDPOD_WORKLOAD_CONTAINER: "workload",
  };
  const classic = ctx.env.spec.sidecarMode === "classic" && ctx.target.kind === "kubernetes";
  if (classic) env.BUILDPOD_WATCH_POD = "true";
  const { readsPod, ...rest } = fields;
  return {
    ...ours(ctx, program, { ...rest, env: { ...env, ...fields.env } }),
    readyPort,
    ...(classic || readsPod ? { fieldEnv: POD_FIELDS } : {}),
  };
}

function agentInject(ctx: Context): ContainerModel | undefined {
  const agent = ctx.env.spec.agent;
  if (!agent?.inject) return undefined;
  const env: Record<string, string> = {
    ...ctx.common,
    AGENT_INJECTOR_DEST: VOLUME_PATHS["buildkite-bin"],
  };
  const list = mounts(ctx, mount("lifecycle"), mount("buildkite-bin"));
  const localRun = local(ctx);
  if (localRun) {
    // No agent binary and no Buildkite here: the local run writes the job env only.
    env.AGENT_INJECTOR_INSTALL_AGENT = "false";
    if (agent.localTokenFile) env.AGENT_INJECTOR_TOKEN_FILE = agent.localTokenFile;
    if (!agent.verifyLocally) env.AGENT_INJECTOR_VERIFY_TOKEN = "false";
  } else {
    addVolume(ctx, {
      name: "job-token",
      source: { kind: "secret", secretName: agent.tokenSecret },
    });
    list.push({ volume: "job-token", mountPath: TOKEN_DIR, readOnly: true });
    env.AGENT_INJECTOR_TOKEN_FILE = `${TOKEN_DIR}/token`;
  }
  return ours(ctx, "agent-injector", {
    name: "agent-injector",
    args: ["inject"],
    env,
    mounts: list,
  });
}

function repoMirror(ctx: Context): ContainerModel | undefined {
  const repo = ctx.env.spec.repository;
  if (!repo) return undefined;
  const localRun = local(ctx);
  addVolume(ctx, {
    name: "repo-cache",
    source: { kind: "persistentVolumeClaim", claimName: repo.cache.claimName, readOnly: true },
    ...(localRun && repo.cache.localPath ? { localPath: repo.cache.localPath } : {}),
  });
  const env: Record<string, string> = {
    ...ctx.common,
    REPO_MIRROR_REPO: (localRun && repo.localUrl) || repo.url,
    REPO_MIRROR_COMMIT: repo.commit,
    REPO_MIRROR_CACHE: VOLUME_PATHS["repo-cache"],
    REPO_MIRROR_DEST: VOLUME_PATHS.workspace,
  };
  if (repo.ref) env.REPO_MIRROR_REF = repo.ref;
  if (repo.mode) env.REPO_MIRROR_MODE = repo.mode;
  if (repo.submodules) env.REPO_MIRROR_SUBMODULES = "true";
  const list = mounts(ctx, mount("workspace"), mount("lifecycle"), mount("repo-cache", true));
  return ours(ctx, "repo-mirror", { name: "repo-mirror", args: ["checkout"], env, mounts: list });
}

/**
 * The artifact store: the description's, except that a local run of a `buildkite` store uses
 * a `dir` store per build, so that this run downloads what the previous run uploaded.
 */
function storeOf(ctx: Context, direction: "upload" | "download"): string {
  const store = ctx.env.spec.artifacts?.store ?? "buildkite";
  const localRun = local(ctx);
  if (!localRun || store !== "buildkite") return store;
  return `dir:${direction === "upload" ? localRun.uploadStore : localRun.downloadStore}`;
}

function artifactDownloader(ctx: Context): ContainerModel | undefined {
  const download = ctx.env.spec.artifacts?.download;
  if (!download) return undefined;
  const env: Record<string, string> = {
    ...ctx.common,
    ARTIFACT_DOWNLOADER_QUERY: download.queries.join(","),
    ARTIFACT_DOWNLOADER_DEST: VOLUME_PATHS["artifacts-imported"],
    ARTIFACT_DOWNLOADER_STORE: storeOf(ctx, "download"),
    ARTIFACT_DOWNLOADER_REQUIRED: String(download.required),
  };
  if (download.step) env.ARTIFACT_DOWNLOADER_STEP = download.step;
  if (download.build) env.ARTIFACT_DOWNLOADER_BUILD = download.build;
  if (download.includeRetried) env.ARTIFACT_DOWNLOADER_INCLUDE_RETRIED_JOBS = "true";
  const list = mounts(ctx, mount("artifacts-imported"), mount("lifecycle"));
  return ours(ctx, "artifact-downloader", {
    name: "artifact-downloader",
    args: [],
    env,
    mounts: list,
  });
}

function logExporter(ctx: Context): ContainerModel | undefined {
  const logs = ctx.env.spec.logs;
  if (!logs) return undefined;
  const env: Record<string, string> = {
    LOG_EXPORTER_LOGS: VOLUME_PATHS.logs,
    LOG_EXPORTER_STATE_DIR: `${VOLUME_PATHS.lifecycle}/state/log-exporter`,
  };
  if (logs.files.length > 0) env.LOG_EXPORTER_PATHS = logs.files.join(",");
  if (Object.keys(logs.labels).length > 0) {
    env.LOG_EXPORTER_LABELS = Object.entries(logs.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
  }
  if (logs.sink) env.LOG_EXPORTER_SINK = logs.sink;
  if (logs.stdout) env.LOG_EXPORTER_POD_LOGS = "true";
  const list = mounts(ctx, mount("logs", true), mount("lifecycle"));
  if (logs.files.some((f) => f.startsWith(`${VOLUME_PATHS.workspace}/`))) {
    list.push(mount("workspace", true));
  }
  const localRun = local(ctx);
  if (localRun) {
    env.LOG_EXPORTER_SINKS = logs.localSinksFile ?? `${localRun.stateDir}/log-sinks.yaml`;
    // No API server here: the workload's output comes from the CRI files the run writes.
    if (logs.stdout) env.LOG_EXPORTER_CRI_LOG_DIR = `${localRun.podLogsDir}/workload`;
  } else {
    addVolume(ctx, {
      name: "log-sinks",
      source: {
        kind: "configMap",
        name: logs.sinksConfigMap,
        items: { "sinks.yaml": "sinks.yaml" },
      },
    });
    list.push({ volume: "log-sinks", mountPath: `${CONFIG_DIR}/log-sinks`, readOnly: true });
    env.LOG_EXPORTER_SINKS = `${CONFIG_DIR}/log-sinks/sinks.yaml`;
  }
  const readsPod = logs.stdout && !localRun;
  return sidecar(ctx, "log-exporter", {
    name: "log-exporter",
    args: [],
    env,
    mounts: list,
    readsPod,
  });
}

function artifactUploader(ctx: Context): ContainerModel | undefined {
  const upload = ctx.env.spec.artifacts?.upload;
  if (!upload) return undefined;
  const env: Record<string, string> = {
    ARTIFACT_UPLOADER_ROOT: VOLUME_PATHS.artifacts,
    ARTIFACT_UPLOADER_STORE: storeOf(ctx, "upload"),
  };
  if (upload.include) env.ARTIFACT_UPLOADER_INCLUDE = upload.include.join(",");
  if (upload.exclude) env.ARTIFACT_UPLOADER_EXCLUDE = upload.exclude.join(",");
  const list = mounts(ctx, mount("artifacts", true), mount("lifecycle"));
  return sidecar(ctx, "artifact-uploader", {
    name: "artifact-uploader",
    args: [],
    env,
    mounts: list,
  });
}

function metricsExporter(ctx: Context): ContainerModel | undefined {
  const metrics = ctx.env.spec.metrics;
  if (!metrics || (!metrics.prometheus && !metrics.push && !metrics.datadog)) return undefined;
  const env: Record<string, string> = { METRICS_ROOT: VOLUME_PATHS.metrics };
  const list = mounts(ctx, mount("metrics", true), mount("lifecycle"));
  const ports: { name: string; port: number }[] = [];
  if (metrics.prometheus) {
    env.METRICS_EXPORTER_LISTEN = `:${metrics.prometheus.port}`;
    ports.push({ name: "metrics", port: metrics.prometheus.port });
  }
  if (metrics.push) {
    const localRun = local(ctx);
    if (localRun) {
      if (metrics.push.localConfigFile)
        env.METRICS_EXPORTER_PUSH_CONFIG = metrics.push.localConfigFile;
    } else {
      addVolume(ctx, {
        name: "pushgateway",
        source: {
          kind: "configMap",
          name: metrics.push.configMap,
          items: { "pushgateway.yaml": "pushgateway.yaml" },
        },
      });
      list.push({ volume: "pushgateway", mountPath: `${CONFIG_DIR}/pushgateway`, readOnly: true });
      env.METRICS_EXPORTER_PUSH_CONFIG = `${CONFIG_DIR}/pushgateway/pushgateway.yaml`;
    }
  }
  if (metrics.datadog) env.METRICS_EXPORTER_DATADOG = "dogstatsd";
  const fields = { name: "metrics-exporter", args: [], env, mounts: list, ports };
  return sidecar(ctx, "metrics-exporter", fields);
}

function agentRun(ctx: Context): ContainerModel | undefined {
  const run = ctx.env.spec.agent?.run;
  if (!run) return undefined;
  const env = { AGENT_INJECTOR_AGENT_ARGS: run.args.join(",") };
  const list = mounts(ctx, mount("lifecycle"), mount("buildkite-bin", true), mount("workspace"));
  return sidecar(ctx, "agent-injector", { name: "agent-runner", args: ["run"], env, mounts: list });
}

function customSidecar(ctx: Context, s: CustomSidecar): ContainerModel {
  const list = s.volumes.map((name) =>
    name in VOLUME_PATHS ? mount(name as StandardVolume) : { volume: name, mountPath: `/${name}` },
  );
  mounts(ctx, ...list);
  // Custom sidecars get the same lifecycle settings as ours; one built on @buildpod/runtime
  // reads them. Whether it serves /readyz is unknown, so it gets no startup probe.
  const { readyPort: _, ...container } = sidecar(ctx, "custom", {
    name: s.name,
    args: [],
    env: s.env,
    mounts: list,
  });
  return {
    ...container,
    image: s.image,
    program: undefined,
    command: s.command,
    resources: s.resources,
    ...(s.localCommand ? { localCommand: s.localCommand } : {}),
  };
}

function workloadContainer(ctx: Context): ContainerModel {
  const { workload, sidecarMode } = ctx.env.spec;
  const pathEnv = Object.fromEntries(
    Object.entries(WORKLOAD_PATH_ENV)
      .filter(([, volume]) => ctx.volumes.has(volume))
      .map(([name, volume]) => [name, VOLUME_PATHS[volume]]),
  );
  const list = mounts(
    ctx,
    ...[...ctx.volumes.keys()]
      .filter((v) => v in VOLUME_PATHS && v !== "repo-cache")
      .map((v) => mount(v as StandardVolume, v === "buildkite-bin")),
  );
  // Classic sidecars learn the end from the marker: the workload's command is wrapped so that
  // its exit code is written atomically to the lifecycle volume, whatever the command does.
  const command =
    sidecarMode === "classic"
      ? ["/bin/sh", "-c", MARKER_WRAPPER, "buildpod-workload", ...workload.command]
      : workload.command;
  return {
    name: "workload",
    image: workload.image,
    command,
    args: [],
    env: { ...ctx.common, ...pathEnv, ...workload.env },
    mounts: list,
    ...(workload.resources ? { resources: workload.resources } : {}),
  };
}

/** Runs "$@", then writes its exit code to the marker via temp file and rename. */
export const MARKER_WRAPPER =
  'code=0; "$@" || code=$?; ' +
  'marker="$BUILDPOD_LIFECYCLE_DIR/workload-finished"; ' +
  'printf "%s\\n" "$code" > "$marker.tmp" && mv "$marker.tmp" "$marker"; exit "$code"';
