/**
 * The pod a BuildEnvironment describes, before it becomes either Kubernetes objects
 * (kubernetes.ts) or local processes (local/run.ts). Both read this one model, so the local
 * run starts exactly the containers, env vars, flags and mounts the rendered pod has.
 */

/** Where a volume's content comes from. */
export type VolumeSource =
  | { kind: "emptyDir"; medium?: "Memory" }
  | { kind: "persistentVolumeClaim"; claimName: string; readOnly: boolean }
  | { kind: "configMap"; name: string; items: Record<string, string> }
  | { kind: "secret"; secretName: string };

export interface VolumeModel {
  name: string;
  source: VolumeSource;
  /** For the local run: an existing folder to use instead of a fresh temporary one. */
  localPath?: string;
  /** For the local run of a ConfigMap or Secret: file name in the volume → file to copy there. */
  localFiles?: Record<string, string>;
}

export interface MountModel {
  volume: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface ContainerModel {
  name: string;
  image: string;
  /** The buildpod program the image runs (its bundle, locally); absent for foreign images. */
  program?: string;
  /** Overrides the image's entrypoint; absent for buildpod images, whose entrypoint is the bundle. */
  command?: string[];
  args: string[];
  env: Record<string, string>;
  /** Env vars filled in by the downward API (`metadata.name`, `metadata.namespace`). */
  fieldEnv?: Record<string, string>;
  mounts: MountModel[];
  /** Port of `/readyz`, used as the native sidecar's startup probe. */
  readyPort?: number;
  /** Further ports the container serves (metrics for scraping). */
  ports?: { name: string; port: number }[];
  resources?: {
    requests?: Record<string, string | number>;
    limits?: Record<string, string | number>;
  };
  /** For the local run: argv to start instead of the image (custom sidecars, the workload). */
  localCommand?: string[];
  /** The drain deadline of a sidecar, in seconds. */
  drainSeconds?: number;
}

export interface PodModel {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  sidecarMode: "native" | "classic";
  terminationGracePeriodSeconds: number;
  /** Whether any container watches the pod or reads its logs through the Kubernetes API. */
  needsApiAccess: boolean;
  volumes: VolumeModel[];
  /** Init containers in the order they run. */
  initContainers: ContainerModel[];
  /** Sidecars in start order; native mode stops them in reverse order. */
  sidecars: ContainerModel[];
  workload: ContainerModel;
}

/** The volumes every pod has, and where containers mount them. */
export const VOLUME_PATHS = {
  workspace: "/workspace",
  lifecycle: "/buildpod",
  logs: "/logs",
  artifacts: "/artifacts",
  "artifacts-imported": "/artifacts-imported",
  metrics: "/metrics",
  "buildkite-bin": "/buildkite/bin",
  "repo-cache": "/cache/git",
} as const;

export type StandardVolume = keyof typeof VOLUME_PATHS;

export function mount(volume: StandardVolume, readOnly = false): MountModel {
  return readOnly
    ? { volume, mountPath: VOLUME_PATHS[volume], readOnly }
    : { volume, mountPath: VOLUME_PATHS[volume] };
}

/**
 * The env vars through which the workload finds its volumes. In the pod they hold the mount
 * paths; the local run maps them to its temporary folders, so one command works in both.
 */
export const WORKLOAD_PATH_ENV: Record<string, StandardVolume> = {
  BUILDPOD_WORKSPACE: "workspace",
  BUILDPOD_LOGS: "logs",
  BUILDPOD_ARTIFACTS: "artifacts",
  BUILDPOD_ARTIFACTS_IMPORTED: "artifacts-imported",
  BUILDPOD_METRICS: "metrics",
  BUILDPOD_LIFECYCLE_DIR: "lifecycle",
};
