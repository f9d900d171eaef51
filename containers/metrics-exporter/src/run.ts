/**
 * `metrics-exporter`: turns the options into an Exporter, runs it until the workload finished,
 * drains it, and reports.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError,
  type ConfigOf,
  loadDocumentFile,
  type Problem,
  type Source,
} from "@buildpod/config";
import { defineCommand, type RunContext } from "@buildpod/runtime";
import { options, type PushFile, pushFileSchema } from "./config.ts";
import { datadogTag } from "./datadog.ts";
import { DatadogApiSink, type DatadogSink, DogStatsdSink, seriesUrl } from "./datadog-sinks.ts";
import { Exporter, type ExporterOptions } from "./exporter.ts";
import type { PushTarget } from "./pushgateway.ts";

type Config = ConfigOf<typeof options>;
type Env = RunContext<Config>["env"];

export const runCommand = defineCommand({
  description: "push, serve and forward the metrics files the job writes",
  kind: "sidecar",
  options,
  async run(ctx) {
    const exporter = new Exporter(exporterOptions(ctx));
    try {
      await exporter.start();
      const finished = await ctx.lifecycle.finished;
      ctx.logger.info({ reason: finished.reason }, `draining: ${finished.detail}`);
      const outcome = await exporter.drain(ctx.lifecycle.drainSignal());
      return outcome;
    } finally {
      await exporter.close();
    }
  },
  // --print-config reads the push file as a run would: its mistakes are configuration errors
  // there too, and it shows where pushes go (never the password).
  effective: async (config) => {
    if (config.pushConfig === undefined) return {};
    const problems: Problem[] = [];
    const { data, file } = loadDocumentFile(config.pushConfig, pushFileSchema);
    const push = pushOptions(data, file.lineOf, config, {}, problems);
    if (problems.length > 0) throw new ConfigError(problems);
    const target = push?.target;
    return { push: { url: target?.url, job: target?.job, retention: push?.retention } };
  },
});

/** Builds the exporter's options; every configuration problem is reported at once. */
export function exporterOptions(ctx: RunContext<Config>): ExporterOptions {
  const { config } = ctx;
  const problems: Problem[] = [];
  const env = jobEnv(ctx, problems);
  const opts: ExporterOptions = {
    root: config.root,
    incompleteGraceMs: config.incompleteGrace,
    rescanIntervalMs: config.rescanInterval,
    finalScrapeWaitMs: config.finalScrapeWait,
    logger: ctx.logger,
    metrics: ctx.metrics,
  };
  if (config.listen !== undefined) opts.serve = parseListen(config.listen);
  if (config.pushConfig !== undefined) {
    const { data, file } = loadDocumentFile(config.pushConfig, pushFileSchema);
    opts.push = pushOptions(data, file.lineOf, config, env, problems);
  }
  if (config.datadog !== "off") {
    opts.datadog = {
      sink: datadogSink(config, ctx.sources, problems, (err) =>
        ctx.logger.warn({ err }, `could not send to dogstatsd: ${err.message}`),
      ),
      mapping: {
        namespace: config.datadogNamespace,
        tags: [...config.datadogTags, ...contextTags(config.datadogContextTags, env)],
      },
      intervalMs: config.datadogInterval,
    };
  }
  if (!opts.serve && !opts.push && !opts.datadog) {
    problems.push({
      key: "listen",
      expected: "at least one output: --listen ADDR, --push-config FILE or --datadog MODE",
      hint: "with none of them the sidecar would have nothing to do",
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return opts;
}

/**
 * The job's env: this container's env over `<lifecycle dir>/env/buildkite.json`, which
 * agent-injector writes before the sidecars start (a sidecar's own env may lack BUILDKITE_*).
 */
function jobEnv(ctx: RunContext<Config>, problems: Problem[]): Env {
  const path = join(ctx.common.lifecycleDir, "env", "buildkite.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return ctx.env;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    const fromFile = Object.fromEntries(
      Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
    return { ...fromFile, ...ctx.env };
  } catch (err) {
    problems.push({
      key: "lifecycleDir",
      source: { kind: "file", name: path },
      expected: "a JSON object of strings (the job env written by agent-injector)",
      received: (err as Error).message,
    });
    return ctx.env;
  }
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces). */
function parseListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? "0.0.0.0" : host, port: Number(listen.slice(at + 1)) };
}

function pushOptions(
  file: PushFile,
  lineOf: (at: string[]) => number | undefined,
  config: Config,
  env: Env,
  problems: Problem[],
): ExporterOptions["push"] {
  const pg = file.pushgateway;
  const path = config.pushConfig as string;
  // Where in the push file a key is, for the problems found after validation.
  const at = (key: string): Source => ({
    kind: "file",
    name: path,
    line: lineOf(["pushgateway", ...key.split(".")]),
  });
  const readSecret = (key: string, name: string) => {
    try {
      return readFileSync(name, "utf8").trim();
    } catch (err) {
      problems.push({
        key: `pushgateway.${key}`,
        source: at(key),
        expected: "a readable file",
        received: `${name} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      });
      return "";
    }
  };
  // Credentials belong in basicAuth.passwordFile, not in a ConfigMap: refused without echoing.
  const url = new URL(pg.url);
  if (url.username !== "" || url.password !== "") {
    url.username = "";
    url.password = "";
    problems.push({
      key: "pushgateway.url",
      source: at("url"),
      expected: "a URL without user or password",
      received: `${url.href} with credentials (not shown)`,
      hint: "give them in basicAuth with passwordFile",
    });
  }
  const grouping = Object.entries(pg.grouping).map(
    ([label, from]) => [label, groupingValue(from, env)] as const,
  );
  const target: PushTarget = {
    url: pg.url,
    job: pg.job,
    grouping,
    timeoutMs: pg.timeout,
    ca: pg.caFile === undefined ? undefined : readSecret("caFile", pg.caFile),
    basicAuth:
      pg.basicAuth === undefined
        ? undefined
        : {
            username: pg.basicAuth.username,
            password: readSecret("basicAuth.passwordFile", pg.basicAuth.passwordFile),
          },
  };
  return {
    target,
    debounceMs: config.pushDebounce,
    retention: pg.retention,
    deleteAfterMs: pg.deleteAfter,
  };
}

/** A grouping value from the job env: the first set variable, a fixed value, or empty. */
function groupingValue(from: PushFile["pushgateway"]["grouping"][string], env: Env): string {
  if (typeof from === "object" && !Array.isArray(from)) return from.value;
  const names = Array.isArray(from) ? from : [from];
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
  }
  return "";
}

function contextTags(specs: readonly string[], env: Env): string[] {
  const tags: string[] = [];
  for (const spec of specs) {
    const [tag, name] = spec.split("=") as [string, string];
    const value = env[name];
    if (value !== undefined && value !== "") tags.push(datadogTag(tag, value));
  }
  return tags;
}

function datadogSink(
  config: Config,
  sources: Readonly<Record<string, Source>>,
  problems: Problem[],
  onError: (err: Error) => void,
): DatadogSink {
  if (config.datadog === "api") {
    if (config.datadogApiKey === undefined) {
      problems.push({
        key: "datadogApiKey",
        expected:
          "an API key for --datadog api: DD_API_KEY, DD_API_KEY via a secret, or --datadog-api-key-file",
      });
    }
    return new DatadogApiSink({
      url: config.datadogApiUrl ?? seriesUrl(config.datadogSite),
      apiKey: config.datadogApiKey ?? "",
      timeoutMs: config.datadogTimeout,
    });
  }
  let host = config.datadogAgentHost;
  let port = config.datadogDogstatsdPort;
  const url = config.datadogDogstatsdUrl;
  if (url !== undefined && url !== "") {
    const match = /^udp:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
    if (match === null) {
      problems.push({
        key: "datadogDogstatsdUrl",
        source: sources.datadogDogstatsdUrl,
        expected: "udp://HOST:PORT",
        received: JSON.stringify(url),
        hint: url.startsWith("unix")
          ? "DogStatsD over a Unix socket is not supported (it needs a native addon); use the Agent's UDP port or --datadog api"
          : undefined,
      });
    } else {
      host = (match[1] as string).replace(/^\[(.*)\]$/, "$1");
      port = match[2] === undefined ? 8125 : Number(match[2]);
    }
  }
  return new DogStatsdSink({ host, port, onError });
}
