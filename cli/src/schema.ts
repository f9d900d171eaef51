import { z } from "@buildpod/config";
import { parseRepoUrl, UsageError } from "@buildpod/repo-mirror";

/**
 * The BuildEnvironment description: a job's workload, which of buildpod's init containers and
 * sidecars it uses with each one's per-job settings, extra custom sidecars, and the sidecar
 * mode. `render` turns it into Kubernetes objects and `run` into a local pod; both read this
 * one schema. Every section but `workload` is optional: leaving one out leaves its container out.
 * docs/build-environment.md documents each field.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const envMap = z.record(z.string().regex(ENV_NAME, "an env var name"), z.string());
const quantity = z.union([z.string(), z.number()]);
const resources = z.strictObject({
  requests: z.record(z.string(), quantity).optional(),
  limits: z.record(z.string(), quantity).optional(),
});

const workload = z.strictObject({
  /** The workload's image; the local run ignores it and runs `command` on this machine. */
  image: z.string().min(1),
  /** Command and arguments (exec form); the local run starts it with the same argv. */
  command: z.array(z.string()).min(1),
  env: envMap.default({}),
  resources: resources.optional(),
  /** Seconds the workload may take to stop on pod deletion, on top of the sidecars' drains. */
  stopSeconds: z.number().int().min(0).default(10),
});

// What repo-mirror accepts, checked with its own parser so that `render` refuses what would
// only fail in the pod: a URL without a scheme, an option-like or transport-helper URL.
const repositoryUrl = z
  .string()
  .min(1)
  .superRefine((url, ctx) => {
    try {
      parseRepoUrl(url, "url");
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      // repo-mirror's message names the input itself; the problem line names it already.
      const forms = /; expected (.*)$/.exec(e.message)?.[1];
      const why = e.message.replace(/^url (".*?" )?/, "").replace(/; (give|use) .*$/, "");
      const message = forms
        ? `a repository URL: ${forms}`
        : `a repository URL (https, ssh, git or file); this one ${why}`;
      ctx.addIssue({ code: "custom", message, input: url });
    }
  });

const repository = z.strictObject({
  url: repositoryUrl,
  /** For the local run: the URL or path to use instead (a path is relative to this file). */
  localUrl: z.string().optional(),
  commit: z
    .string()
    .regex(/^([0-9a-f]{4,64}|HEAD)$/, "a commit in hex (4 to 64 digits) or HEAD")
    .default("HEAD"),
  ref: z.string().optional(),
  mode: z.enum(["dissociate", "reference"]).optional(),
  submodules: z.boolean().default(false),
  /** The cluster's repo cache: a PersistentVolumeClaim mounted read-only; a folder locally. */
  cache: z
    .strictObject({
      claimName: z.string().regex(DNS_LABEL).default("buildpod-repo-cache"),
      localPath: z.string().optional(),
    })
    .prefault({}),
});

const artifacts = z.strictObject({
  /** `buildkite` (the agent API) or `dir:PATH` (a plain directory tree). */
  store: z
    .string()
    .regex(/^(buildkite|dir:.+)$/, '"buildkite" or "dir:PATH"')
    .default("buildkite"),
  download: z
    .strictObject({
      queries: z.array(z.string().min(1)).min(1),
      step: z.string().optional(),
      build: z.string().optional(),
      includeRetried: z.boolean().default(false),
      required: z.boolean().default(true),
    })
    .optional(),
  upload: z
    .strictObject({
      include: z.array(z.string()).optional(),
      exclude: z.array(z.string()).optional(),
    })
    .optional(),
});

const logs = z.strictObject({
  /** The sink's name in the cluster's sinks file; its default when absent. */
  sink: z.string().optional(),
  /** The ConfigMap holding the cluster's sinks file (key `sinks.yaml`). */
  sinksConfigMap: z.string().regex(DNS_LABEL).default("buildpod-log-sinks"),
  /** For the local run: the sinks file to use; absent, records go to a local file sink. */
  localSinksFile: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  /** Capture the workload's stdout and stderr. */
  stdout: z.boolean().default(true),
  /** Further files or globs to tail, e.g. `/workspace/build/*.log`. */
  files: z.array(z.string()).default([]),
});

const metrics = z.strictObject({
  /** Serve `/metrics/prometheus/*.prom` for scraping on this port. */
  prometheus: z.strictObject({ port: z.number().int().min(1).max(65535).default(9100) }).optional(),
  /** Push `/metrics/prometheus-push/*.prom` to the Pushgateway named in this ConfigMap. */
  push: z
    .strictObject({
      configMap: z.string().regex(DNS_LABEL).default("buildpod-pushgateway"),
      localConfigFile: z.string().optional(),
    })
    .optional(),
  /** Forward `/metrics/datadog/*.prom` to the Datadog agent on the node. */
  datadog: z.strictObject({ apiKeySecret: z.string().optional() }).optional(),
});

const agent = z.strictObject({
  /** Copy buildkite-agent and the job's credentials into the pod. */
  inject: z.boolean().default(true),
  /** The Secret holding the job token (key `token`). */
  tokenSecret: z.string().regex(DNS_LABEL).default("buildkite-job-token"),
  /** For the local run: a file holding the job token. */
  localTokenFile: z.string().optional(),
  /** For the local run: verify the token against the agent API (needs a real one). */
  verifyLocally: z.boolean().default(true),
  /** Run buildkite-agent beside the workload with these arguments. */
  run: z.strictObject({ args: z.array(z.string()).min(1) }).optional(),
});

const customSidecar = z.strictObject({
  name: z.string().regex(DNS_LABEL),
  image: z.string().min(1),
  command: z.array(z.string()).min(1),
  env: envMap.default({}),
  /** Which of the pod's volumes it mounts, by name (see docs/build-environment.md). */
  volumes: z.array(z.string()).default([]),
  /** For the local run: the command to start instead of the image's. */
  localCommand: z.array(z.string()).optional(),
  resources: resources.optional(),
});

export const buildEnvironmentSchema = z.strictObject({
  apiVersion: z.literal("buildpod.dev/v1"),
  kind: z.literal("BuildEnvironment"),
  metadata: z.strictObject({
    name: z.string().regex(DNS_LABEL, "a DNS label: lowercase letters, digits and '-'"),
    namespace: z.string().regex(DNS_LABEL).default("default"),
    labels: z.record(z.string(), z.string()).default({}),
  }),
  spec: z.strictObject({
    /** `native`: sidecars are init containers with restartPolicy Always (Kubernetes 1.29+). */
    sidecarMode: z.enum(["native", "classic"]).default("native"),
    /** Where buildpod's images come from, and their tag. */
    images: z
      .strictObject({
        registry: z.string().default("ghcr.io/buildpod"),
        tag: z.string().default("latest"),
      })
      .prefault({}),
    /** Buildkite job env given to every container (the agent sets it in a real job). */
    buildkite: envMap.default({}),
    /** Each sidecar's drain deadline. */
    drainSeconds: z.number().int().min(1).max(3600).default(25),
    workload,
    repository: repository.optional(),
    artifacts: artifacts.optional(),
    logs: logs.optional(),
    metrics: metrics.optional(),
    agent: agent.optional(),
    sidecars: z.array(customSidecar).default([]),
    /**
     * The cluster-level files the pod's ConfigMaps hold: `render` emits the ConfigMaps from
     * them (paths relative to this file). Without them the ConfigMaps are only referenced.
     */
    cluster: z
      .strictObject({ logSinksFile: z.string().optional(), pushgatewayFile: z.string().optional() })
      .prefault({}),
  }),
});

export type BuildEnvironment = z.output<typeof buildEnvironmentSchema>;
export type CustomSidecar = z.output<typeof customSidecar>;
