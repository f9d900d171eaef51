import type { ContainerModel, PodModel, VolumeModel } from "./pod.ts";

/** A Kubernetes object as plain data, ready for YAML. */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
} & Record<string, unknown>;

const SERVICE_ACCOUNT_SUFFIX = "-buildpod";

/**
 * The Pod and the companion objects it relies on: a ServiceAccount with a Role allowing `get`
 * and `watch` on pods and `get` on `pods/log` (the pod watch and the log stream read nothing
 * else), and its RoleBinding. ConfigMaps and Secrets are referenced, not created: they are the
 * cluster's (see examples/kubernetes/cluster.yaml).
 */
export function toKubernetes(pod: PodModel): KubeObject[] {
  const objects: KubeObject[] = [];
  const serviceAccount = `${pod.name}${SERVICE_ACCOUNT_SUFFIX}`;
  if (pod.needsApiAccess) objects.push(...rbacObjects(pod, serviceAccount));
  objects.push(podObject(pod, pod.needsApiAccess ? serviceAccount : undefined));
  return objects;
}

function podObject(pod: PodModel, serviceAccount: string | undefined): KubeObject {
  const native = pod.sidecarMode === "native";
  const sidecars = pod.sidecars.map((c) =>
    containerSpec(c, native ? "native-sidecar" : "container"),
  );
  const spec: Record<string, unknown> = {
    restartPolicy: "Never",
    terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
    ...(serviceAccount
      ? { serviceAccountName: serviceAccount }
      : { automountServiceAccountToken: false }),
    initContainers: [
      ...pod.initContainers.map((c) => containerSpec(c, "init")),
      ...(native ? sidecars : []),
    ],
    containers: [containerSpec(pod.workload, "container"), ...(native ? [] : sidecars)],
    volumes: pod.volumes.map(volumeSpec),
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      labels: { ...pod.labels, "app.kubernetes.io/managed-by": "buildpod" },
    },
    spec,
  };
}

type Role = "init" | "native-sidecar" | "container";

function containerSpec(c: ContainerModel, role: Role): Record<string, unknown> {
  const env = [
    ...Object.entries(c.env).map(([name, value]) => ({ name, value })),
    ...Object.entries(c.fieldEnv ?? {}).map(([name, fieldPath]) => ({
      name,
      valueFrom: { fieldRef: { fieldPath } },
    })),
  ];
  const spec: Record<string, unknown> = { name: c.name, image: c.image };
  if (c.command) spec.command = c.command;
  if (c.args.length > 0) spec.args = c.args;
  if (env.length > 0) spec.env = env;
  if (c.ports?.length) spec.ports = c.ports.map((p) => ({ name: p.name, containerPort: p.port }));
  if (c.resources) spec.resources = c.resources;
  spec.volumeMounts = c.mounts.map((m) => ({
    name: m.volume,
    mountPath: m.mountPath,
    ...(m.readOnly ? { readOnly: true } : {}),
  }));
  // Logs are the first place anyone looks when an init container fails the job.
  spec.terminationMessagePolicy = "FallbackToLogsOnError";
  if (c.program) {
    spec.securityContext = {
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    };
  }
  if (role === "native-sidecar") {
    spec.restartPolicy = "Always";
    if (c.readyPort) {
      // The workload starts only after every native sidecar's startup probe passed, so no
      // line or file it writes can come before the sidecar watches for it (KEP-753).
      spec.startupProbe = {
        httpGet: { path: "/readyz", port: c.readyPort },
        periodSeconds: 1,
        failureThreshold: 30,
      };
    }
  }
  return spec;
}

function volumeSpec(v: VolumeModel): Record<string, unknown> {
  const s = v.source;
  switch (s.kind) {
    case "emptyDir":
      return { name: v.name, emptyDir: s.medium ? { medium: s.medium } : {} };
    case "persistentVolumeClaim":
      return {
        name: v.name,
        persistentVolumeClaim: { claimName: s.claimName, readOnly: s.readOnly },
      };
    case "configMap":
      return {
        name: v.name,
        configMap: {
          name: s.name,
          items: Object.entries(s.items).map(([key, path]) => ({ key, path })),
        },
      };
    case "secret":
      return { name: v.name, secret: { secretName: s.secretName, defaultMode: 0o400 } };
  }
}

function rbacObjects(pod: PodModel, serviceAccount: string): KubeObject[] {
  const metadata = { name: serviceAccount, namespace: pod.namespace };
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata,
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "watch", "list"] },
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata,
      subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace: pod.namespace }],
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: serviceAccount },
    },
  ];
}
