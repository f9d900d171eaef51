import path from "node:path";
import { pathToFileURL } from "node:url";
import { loadDocument } from "@buildpod/config";
import { type BuildEnvironment, buildEnvironmentSchema } from "./schema.ts";

/**
 * Reads and validates a BuildEnvironment description; problems name the file and line. Local
 * paths in it (`localUrl`, `localPath`, `local...File`) are relative to the description's folder.
 */
export function loadDescription(file: string): BuildEnvironment {
  const env = loadDocument(file, buildEnvironmentSchema);
  const base = path.dirname(path.resolve(file));
  const resolve = (p: string | undefined) => (p === undefined ? p : path.resolve(base, p));
  const repo = env.spec.repository;
  if (repo?.localUrl && !/^[a-z][a-z0-9+.-]*:/i.test(repo.localUrl)) {
    repo.localUrl = pathToFileURL(resolve(repo.localUrl) as string).href;
  }
  if (repo) repo.cache.localPath = resolve(repo.cache.localPath);
  if (env.spec.logs) env.spec.logs.localSinksFile = resolve(env.spec.logs.localSinksFile);
  if (env.spec.metrics?.push)
    env.spec.metrics.push.localConfigFile = resolve(env.spec.metrics.push.localConfigFile);
  if (env.spec.agent) env.spec.agent.localTokenFile = resolve(env.spec.agent.localTokenFile);
  env.spec.cluster.logSinksFile = resolve(env.spec.cluster.logSinksFile);
  env.spec.cluster.pushgatewayFile = resolve(env.spec.cluster.pushgatewayFile);
  return env;
}
