/** @buildpod/cli: the BuildEnvironment description, its rendering and its local run. */
export { buildPod, MARKER_WRAPPER, type Target } from "./build-pod.ts";
export { loadDescription } from "./description.ts";
export { type KubeObject, toKubernetes } from "./kubernetes.ts";
export { type Check, checkArtifacts, checkLogs, checkScrape } from "./local/checks.ts";
export { type LocalRunReport, runLocally } from "./local/run.ts";
export type { ContainerModel, PodModel, VolumeModel } from "./pod.ts";
export { renderObjects, repoCacheObjects, toYaml } from "./render.ts";
export { type BuildEnvironment, buildEnvironmentSchema } from "./schema.ts";
