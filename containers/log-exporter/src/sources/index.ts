// Builds the sources a run reads from: the logs directory, the configured paths and globs, and
// the workload's output (pod log stream or CRI files).
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { ConfigError, type Source as ValueSource } from "@buildpod/config";
import type { Logger } from "@buildpod/runtime";
import picomatch from "picomatch";
import type { Metrics } from "../metrics.ts";
import type { Envelope } from "../pipeline.ts";
import type { MultilineOptions } from "./assemble.ts";
import { FileSource } from "./files.ts";
import { PodLogSource } from "./pod-log.ts";

/** What the run loop needs of any source. */
export interface Source {
  readonly name: string;
  start(): Promise<void>;
  envelopes(): AsyncIterable<Envelope>;
  /** Read everything to its end, then end `envelopes` (the workload finished). */
  drain(): void;
  /** End `envelopes` now (drain deadline passed). */
  stop(): void;
  close(): Promise<void>;
  /** Bytes read and not yet delivered (for metrics). */
  bufferedBytes(): number;
}

/** The subset of the config the sources need. */
export interface SourcesConfig {
  logs: string;
  exclude: string[];
  paths: string[];
  podLogs: boolean;
  criLogDir?: string;
  multilineStart?: string;
  multilineTimeout: number;
  multilineMaxLines: number;
  maxLineBytes: number;
  maxBufferedBytes: number;
  pollInterval: number;
  workloadContainer: string;
  kubernetesApi?: string;
  serviceAccountDir: string;
  podName?: string;
  podNamespace?: string;
}

export async function buildSources(
  config: SourcesConfig,
  env: Readonly<Record<string, string | undefined>>,
  stateDir: string,
  logger: Logger,
  metrics: Metrics,
  where: Readonly<Record<string, ValueSource>> = {},
): Promise<Source[]> {
  const jobKey = env.BUILDKITE_JOB_ID ?? "local";
  const multiline = multilineOf(config);
  const sources: Source[] = [];
  const files = (
    name: string,
    root: string,
    extra: Partial<ConstructorParameters<typeof FileSource>[0]>,
  ) =>
    fileSource(
      new FileSource({
        name,
        root,
        checkpointFile: join(stateDir, checkpointName(root, ...(extra.include ?? []))),
        jobKey,
        maxLineBytes: config.maxLineBytes,
        maxBufferedBytes: config.maxBufferedBytes,
        pollIntervalMs: config.pollInterval,
        onWarning: (w) => {
          metrics.warnings.inc({ code: w.code });
          logger.warn({ err: w.cause, path: w.path, code: w.code }, w.message);
        },
        onFile: (e) => logger.debug({ path: e.path, event: e.type }, "file event"),
        ...extra,
      }),
    );

  const logs = statSync(config.logs, { throwIfNoEntry: false });
  if (logs !== undefined && !logs.isDirectory()) {
    throw new ConfigError([
      {
        key: "logs",
        source: where.logs,
        expected: "a directory (every file below it is exported)",
        received: `${JSON.stringify(config.logs)}, which is not a directory`,
        hint: "give the logs directory; name single files with --path",
      },
    ]);
  }
  if (logs !== undefined) {
    sources.push(files("logs", config.logs, { exclude: config.exclude, multiline }));
  } else {
    logger.warn({ path: config.logs }, "the logs directory does not exist; not exporting it");
  }
  for (const glob of config.paths) {
    const { root, include } = splitGlob(glob);
    sources.push(files(`path ${glob}`, root, { include: [include], multiline }));
  }
  if (config.podLogs && config.criLogDir !== undefined) {
    sources.push(files("cri", config.criLogDir, { include: ["**/*.log"], cri: true }));
  } else if (config.podLogs) {
    sources.push(await podLogSource(config, env, stateDir, jobKey, logger));
  }
  return sources;
}

function fileSource(source: FileSource): Source {
  return {
    name: source.options.name,
    start: () => source.start(),
    envelopes: () => source.envelopes(),
    drain: () => source.drain(),
    stop: () => void source.close(),
    close: () => source.close(),
    bufferedBytes: () => source.tailer.stats().bufferedBytes,
  };
}

async function podLogSource(
  config: SourcesConfig,
  env: Readonly<Record<string, string | undefined>>,
  stateDir: string,
  jobKey: string,
  logger: Logger,
): Promise<Source> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const apiUrl =
    config.kubernetesApi ??
    (host && port ? `https://${host.includes(":") ? `[${host}]` : host}:${port}` : undefined);
  const namespace =
    config.podNamespace ??
    (await readFile(join(config.serviceAccountDir, "namespace"), "utf8").then(
      (t) => t.trim(),
      () => undefined,
    ));
  if (!apiUrl || !config.podName || !namespace) {
    throw new ConfigError([
      {
        key: "podLogs",
        expected: "the Kubernetes API URL, POD_NAME and the namespace, to read the pod log stream",
        hint: "run in a pod with POD_NAME and POD_NAMESPACE from the downward API, or set --cri-log-dir",
      },
    ]);
  }
  const source = new PodLogSource({
    apiUrl,
    tokenFile: join(config.serviceAccountDir, "token"),
    caFile: join(config.serviceAccountDir, "ca.crt"),
    namespace,
    podName: config.podName,
    container: config.workloadContainer,
    stateFile: join(stateDir, `pod-log-${config.workloadContainer}.json`),
    jobKey,
    maxLineBytes: config.maxLineBytes,
    onRetry: ({ attempt, delayMs, err }) =>
      logger.warn(
        { err, attempt, delay_ms: delayMs },
        "could not follow the pod log stream; reconnecting",
      ),
  });
  return {
    name: "pod-log",
    start: async () => {},
    envelopes: () => source.envelopes(),
    // The stream ends by itself once the container has terminated and was drained.
    drain: () => {},
    stop: () => source.stop(),
    close: async () => source.stop(),
    bufferedBytes: () => 0,
  };
}

/** `/workspace/build/*.log` → root `/workspace/build`, include `*.log`. */
export function splitGlob(glob: string): { root: string; include: string } {
  if (!isAbsolute(glob)) {
    throw new ConfigError([
      {
        key: "paths",
        expected: "an absolute path or glob",
        received: glob,
        hint: "write it from / like /workspace/build/*.log",
      },
    ]);
  }
  const scan = picomatch.scan(glob);
  if (!scan.isGlob) {
    const slash = glob.lastIndexOf("/");
    return { root: glob.slice(0, slash) || "/", include: glob.slice(slash + 1) };
  }
  return { root: scan.base || "/", include: scan.glob };
}

function multilineOf(config: SourcesConfig): MultilineOptions | undefined {
  if (config.multilineStart === undefined) return undefined;
  let firstLine: RegExp;
  try {
    firstLine = new RegExp(config.multilineStart);
  } catch (err) {
    throw new ConfigError([
      {
        key: "multilineStart",
        expected: "a JavaScript regular expression",
        received: config.multilineStart,
        hint: (err as Error).message,
      },
    ]);
  }
  return { firstLine, timeoutMs: config.multilineTimeout, maxLines: config.multilineMaxLines };
}

/**
 * The checkpoint file of a source, named by a 64-bit FNV-1a hash of its root and patterns in
 * hex. The name only has to tell one container's few sources apart and stay the same across
 * its restarts. It is not a SHA-256 (as the origin keys of records are) because it is made at
 * start, and hashing with node:crypto then would load OpenSSL, 2 MiB of RSS, into a
 * log-exporter that has no file to read yet.
 */
export function checkpointName(...parts: string[]): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(parts.join("\u0000"))) {
    hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `checkpoints-${hash.toString(16).padStart(16, "0")}.json`;
}
