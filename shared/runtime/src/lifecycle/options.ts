import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, type ConfigOf, duration, option, type Problem, z } from "@buildpod/config";
import type { PodWatchTarget } from "./pod-watch.ts";

/**
 * The options every `kind: "sidecar"` command gets, read by `resolveLifecycleOptions`.
 * All of them use the shared `BUILDPOD_` prefix except the two the downward API fills in.
 */
export const lifecycleOptions = {
  doneFile: option({
    schema: z.string().min(1).optional(),
    description:
      "marker file that means the workload finished; default <lifecycle dir>/workload-finished",
    env: "BUILDPOD_DONE_FILE",
    metavar: "FILE",
  }),
  drainTimeout: option({
    // A few seconds under Kubernetes' default 30 s terminationGracePeriodSeconds, so the
    // summary and status file are written before the kubelet's SIGKILL.
    schema: duration.prefault("25s"),
    description: "how long to finish delivering after the workload finished",
    env: "BUILDPOD_DRAIN_TIMEOUT",
    metavar: "DURATION",
  }),
  watchPod: option({
    schema: z.boolean().default(false),
    description: "also watch this pod through the Kubernetes API for the workload's end",
    env: "BUILDPOD_WATCH_POD",
  }),
  podName: option({
    schema: z.string().min(1).optional(),
    description: "this pod's name (downward API fieldRef metadata.name); needed by --watch-pod",
    env: "POD_NAME",
    metavar: "NAME",
  }),
  podNamespace: option({
    schema: z.string().min(1).optional(),
    description: "this pod's namespace; default the service account's namespace file",
    env: "POD_NAMESPACE",
    metavar: "NAMESPACE",
  }),
  workloadContainer: option({
    schema: z.string().min(1).default("workload"),
    description: "the workload container whose termination the pod watch looks for",
    env: "BUILDPOD_WORKLOAD_CONTAINER",
    metavar: "NAME",
  }),
  kubernetesApi: option({
    schema: z.url({ protocol: /^https?$/ }).optional(),
    description:
      "Kubernetes API URL; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
    env: "BUILDPOD_KUBERNETES_API",
    metavar: "URL",
  }),
  serviceAccountDir: option({
    schema: z.string().min(1).default("/var/run/secrets/kubernetes.io/serviceaccount"),
    description: "directory holding the service account's token, ca.crt and namespace",
    env: "BUILDPOD_SERVICE_ACCOUNT_DIR",
    metavar: "DIR",
  }),
};

export type LifecycleConfig = ConfigOf<typeof lifecycleOptions>;

/** What `createLifecycle` needs from the configuration. */
export interface ResolvedLifecycleOptions {
  doneFile: string;
  drainTimeoutMs: number;
  kubernetes?: PodWatchTarget;
}

/**
 * Turns the validated lifecycle options into `createLifecycle` options: the marker path
 * defaults into the lifecycle directory, and `--watch-pod` gets its API URL, namespace and
 * credentials the way client-go's in-cluster config finds them. Throws a `ConfigError`
 * listing everything missing for the pod watch.
 */
export async function resolveLifecycleOptions(
  config: LifecycleConfig,
  context: { lifecycleDir: string; env: Record<string, string | undefined> },
): Promise<ResolvedLifecycleOptions> {
  const doneFile = config.doneFile ?? join(context.lifecycleDir, "workload-finished");
  const resolved: ResolvedLifecycleOptions = { doneFile, drainTimeoutMs: config.drainTimeout };
  if (!config.watchPod) return resolved;

  const problems: Problem[] = [];
  const apiUrl = config.kubernetesApi ?? inClusterApiUrl(context.env);
  if (!apiUrl) {
    problems.push({
      key: "kubernetesApi",
      expected: "the Kubernetes API URL, needed by watchPod",
      hint: "run in a pod (KUBERNETES_SERVICE_HOST is set there) or set BUILDPOD_KUBERNETES_API",
    });
  }
  if (!config.podName) {
    problems.push({
      key: "podName",
      expected: "this pod's name, needed by watchPod",
      hint: "set POD_NAME from the downward API: valueFrom.fieldRef.fieldPath metadata.name",
    });
  }
  const namespace = config.podNamespace ?? (await readNamespace(config.serviceAccountDir));
  if (!namespace) {
    problems.push({
      key: "podNamespace",
      expected: `this pod's namespace, needed by watchPod (${config.serviceAccountDir}/namespace is missing)`,
      hint: "set POD_NAMESPACE from the downward API: valueFrom.fieldRef.fieldPath metadata.namespace",
    });
  }
  if (problems.length > 0 || !apiUrl || !config.podName || !namespace) {
    throw new ConfigError(problems);
  }

  resolved.kubernetes = {
    apiUrl,
    tokenFile: join(config.serviceAccountDir, "token"),
    caFile: join(config.serviceAccountDir, "ca.crt"),
    namespace,
    podName: config.podName,
    container: config.workloadContainer,
  };
  return resolved;
}

/** `https://HOST:PORT` from the service env vars the kubelet sets in every container. */
function inClusterApiUrl(env: Record<string, string | undefined>): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  // An IPv6 service address needs brackets in a URL (RFC 3986 section 3.2.2).
  return host.includes(":") ? `https://[${host}]:${port}` : `https://${host}:${port}`;
}

async function readNamespace(serviceAccountDir: string): Promise<string | undefined> {
  try {
    const text = (await readFile(join(serviceAccountDir, "namespace"), "utf8")).trim();
    return text || undefined;
  } catch {
    return undefined;
  }
}
