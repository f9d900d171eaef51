import { readFileSync } from "node:fs";
import { stringify } from "yaml";
import { buildPod } from "./build-pod.ts";
import { type KubeObject, toKubernetes } from "./kubernetes.ts";
import type { BuildEnvironment } from "./schema.ts";

/** The Kubernetes objects of a description, in the order `kubectl apply` should see them. */
export function renderObjects(env: BuildEnvironment): KubeObject[] {
  return [...configMaps(env), ...toKubernetes(buildPod(env, { kind: "kubernetes" }))];
}

/** The ConfigMaps the pod mounts, from the cluster files the description names. */
function configMaps(env: BuildEnvironment): KubeObject[] {
  const { cluster, logs, metrics } = env.spec;
  const namespace = env.metadata.namespace;
  const maps: KubeObject[] = [];
  const add = (name: string, key: string, file: string) => {
    const data = { [key]: readFileSync(file, "utf8") };
    maps.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data });
  };
  if (logs && cluster.logSinksFile) add(logs.sinksConfigMap, "sinks.yaml", cluster.logSinksFile);
  if (metrics?.push && cluster.pushgatewayFile) {
    add(metrics.push.configMap, "pushgateway.yaml", cluster.pushgatewayFile);
  }
  return maps;
}

/** Objects as one multi-document YAML stream. */
export function toYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
}

/** How often the CronJob refreshes the repo cache, and how long one sync may take. */
const SYNC_SCHEDULE = "*/10 * * * *";
const SYNC_DEADLINE_SECONDS = 1800;

/**
 * What keeps the repo cache: its PersistentVolumeClaim (ReadWriteMany: job pods on every node
 * mount it read-only while the CronJob writes) and a CronJob running `repo-mirror sync` for the
 * description's repository. `concurrencyPolicy: Forbid`, because sync takes a lock per mirror
 * anyway and overlapping runs would only wait on each other.
 */
export function repoCacheObjects(env: BuildEnvironment, storage = "50Gi"): KubeObject[] {
  const repo = env.spec.repository;
  if (!repo) return [];
  const { namespace } = env.metadata;
  const claimName = repo.cache.claimName;
  const image = `${env.spec.images.registry}/repo-mirror:${env.spec.images.tag}`;
  return [
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claimName, namespace },
      spec: { accessModes: ["ReadWriteMany"], resources: { requests: { storage } } },
    },
    {
      apiVersion: "batch/v1",
      kind: "CronJob",
      metadata: { name: `${claimName}-sync`, namespace },
      spec: {
        schedule: SYNC_SCHEDULE,
        concurrencyPolicy: "Forbid",
        jobTemplate: {
          spec: {
            backoffLimit: 1,
            activeDeadlineSeconds: SYNC_DEADLINE_SECONDS,
            template: {
              spec: {
                restartPolicy: "Never",
                containers: [
                  {
                    name: "repo-mirror-sync",
                    image,
                    args: ["sync", "--cache", "/cache/git", repo.url],
                    env: [{ name: "BUILDPOD_CONTAINER_NAME", value: "repo-mirror-sync" }],
                    volumeMounts: [{ name: "repo-cache", mountPath: "/cache/git" }],
                    securityContext: {
                      runAsNonRoot: true,
                      readOnlyRootFilesystem: true,
                      allowPrivilegeEscalation: false,
                      capabilities: { drop: ["ALL"] },
                    },
                  },
                ],
                volumes: [{ name: "repo-cache", persistentVolumeClaim: { claimName } }],
              },
            },
          },
        },
      },
    },
  ];
}
