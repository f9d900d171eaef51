import { stringify } from "yaml";
import { buildPod } from "./build-pod.ts";
import { type KubeObject, toKubernetes } from "./kubernetes.ts";
import type { BuildEnvironment } from "./schema.ts";

/** The Kubernetes objects of a description, in the order `kubectl apply` should see them. */
export function renderObjects(env: BuildEnvironment): KubeObject[] {
  return toKubernetes(buildPod(env, { kind: "kubernetes" }));
}

/** Objects as one multi-document YAML stream. */
export function toYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
}
