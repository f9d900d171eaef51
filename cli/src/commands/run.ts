import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { option, z } from "@buildpod/config";
import { BuildpodError, defineCommand, ExitCode } from "@buildpod/runtime";
import { stringify } from "yaml";
import { NODE_FLAGS } from "../../../scripts/node-flags.ts";
import { buildPod } from "../build-pod.ts";
import { loadDescription } from "../description.ts";
import {
  type Check,
  checkArtifacts,
  checkLogs,
  checkScrape,
  metricNamesBelow,
} from "../local/checks.ts";
import { startPushgateway } from "../local/pushgateway.ts";
import { formatReport } from "../local/report.ts";
import { type LocalPodContext, runLocally } from "../local/run.ts";
import { descriptionOptions } from "../options.ts";
import type { BuildEnvironment } from "../schema.ts";

const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");

export const run = defineCommand({
  description: "run a BuildEnvironment as a pod on this machine, every container a local process",
  kind: "tool",
  options: {
    ...descriptionOptions,
    stateDir: option({
      schema: z.string().default(".buildpod"),
      description: "folder kept across runs: the runs, each build's uploaded artifacts",
      metavar: "DIR",
    }),
    syncCache: option({
      schema: z.boolean().default(false),
      description:
        "first bring the local repo cache up to date with `repo-mirror sync`, as the cluster's CronJob does",
    }),
    bundles: option({
      schema: z.string().default(REPO_ROOT),
      description: "the repository whose containers/<name>/dist/<name>.mjs bundles run",
      metavar: "DIR",
    }),
  },
  async run({ config, logger }) {
    const description = loadDescription(config.file);
    if (config.sidecarMode) description.spec.sidecarMode = config.sidecarMode;
    const stateDir = path.resolve(config.stateDir);
    const buildId = randomUUID();
    const runDir = path.join(
      stateDir,
      "runs",
      `${new Date().toISOString().replace(/[:.]/g, "-")}-${buildId.slice(0, 8)}`,
    );
    const builds = path.join(stateDir, "builds");
    const lastBuildFile = path.join(stateDir, "last-build");
    // The previous build counts only if it uploaded something: a run that failed before its
    // workload left no artifacts to download.
    const lastBuild = existsSync(lastBuildFile) ? readFileSync(lastBuildFile, "utf8").trim() : "";
    const previousBuild =
      lastBuild && existsSync(path.join(builds, lastBuild, "artifacts")) ? lastBuild : undefined;
    mkdirSync(path.join(runDir, "logs"), { recursive: true });

    const notes: string[] = [];
    const started = Date.now();
    const say = (line: string) => {
      const elapsed = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
      process.stdout.write(`[${elapsed}s] ${line}\n`);
    };
    withLocalJobEnv(description, buildId);
    const sinkFile = path.join(runDir, "sink", "records.jsonl");
    prepareLocalSinks(description, runDir, sinkFile);
    const pushgateway = description.spec.metrics?.push ? await startPushgateway(runDir) : undefined;
    if (description.spec.metrics?.push) {
      if (pushgateway) {
        description.spec.metrics.push.localConfigFile ??= pushgateway.configFile;
        notes.push(`Pushgateway: pushed to the local one at ${pushgateway.url}`);
      } else {
        notes.push("Pushgateway: skipped, prometheus-pushgateway is not installed here");
      }
    }
    const download = description.spec.artifacts?.download;
    if (download && !previousBuild) {
      download.required = false;
      notes.push("artifacts: first run, so there is no earlier build to download from");
    }

    const repo = description.spec.repository;
    if (repo) {
      repo.cache.localPath ??= path.join(stateDir, "cache", "git");
      if (config.syncCache) {
        const url = repo.localUrl ?? repo.url;
        say(`syncing the repo cache ${repo.cache.localPath} from ${url}`);
        const code = await syncCache(
          bundlePath(config.bundles, "repo-mirror"),
          repo.cache.localPath,
          url,
          runDir,
        );
        notes.push(
          `repo cache: repo-mirror sync exited with ${code} (log: ${path.join(runDir, "logs", "repo-mirror-sync.log")})`,
        );
      }
    }

    // A made-up job token stands in for the pod's token Secret: nothing here checks it.
    if (description.spec.agent && !description.spec.agent.localTokenFile) {
      const tokenFile = path.join(runDir, "config", "job-token");
      mkdirSync(path.dirname(tokenFile), { recursive: true });
      writeFileSync(tokenFile, `local-${randomUUID()}\n`, { mode: 0o600 });
      description.spec.agent.localTokenFile = tokenFile;
      description.spec.agent.verifyLocally = false;
    }

    const podUid = randomUUID();
    const podLogsDir = path.join(
      runDir,
      "pod-logs",
      `${description.metadata.namespace}_${description.metadata.name}_${podUid}`,
    );
    const downloadStore = path.join(builds, previousBuild ?? "none", "artifacts");
    mkdirSync(downloadStore, { recursive: true });

    const pod = buildPod(description, {
      kind: "local",
      stateDir,
      podLogsDir,
      uploadStore: path.join(builds, buildId, "artifacts"),
      downloadStore,
    });
    checkBundles(pod.initContainers.concat(pod.sidecars), config.bundles);

    say(`running ${description.metadata.name} (${pod.sidecarMode} sidecars) in ${runDir}`);
    let scraped: string | undefined;
    const report = await runLocally(pod, {
      runDir,
      podLogsDir,
      bundleOf: (program) => bundlePath(config.bundles, program),
      progress: say,
      beforeStop: async (context) => {
        scraped = await scrapeOnce(description, context);
      },
    });
    await pushgateway?.stop();

    const checks: Check[] = [];
    if (report.ok || report.containers.some((c) => c.role === "workload")) {
      checks.push(
        ...(await endToEndChecks(description, report.context, sinkFile, builds, buildId, scraped)),
      );
    }
    writeFileSync(lastBuildFile, `${buildId}\n`);
    process.stdout.write(formatReport(report, checks, notes));
    const ok = report.ok && checks.every((c) => c.ok || c.skipped);
    logger.info({ run_dir: runDir, ok }, "local run finished");
    if (report.failure) {
      const failed = report.containers.at(-1);
      throw new BuildpodError(
        "BUILDPOD_INIT_FAILED",
        `init container ${failed?.name} failed with exit code ${failed?.exitCode}`,
        { hint: `its log: ${path.join(runDir, "logs", `${failed?.name}.log`)}` },
      );
    }
    return {
      exitCode: ok ? ExitCode.OK : ExitCode.FAILED,
      summary: { run_dir: runDir, checks: checks.map((c) => ({ name: c.name, ok: c.ok })) },
    };
  },
});

/** Runs `repo-mirror sync` for the cache, as the cluster's CronJob would; its exit code. */
async function syncCache(
  bundle: string,
  cache: string,
  url: string,
  runDir: string,
): Promise<number> {
  mkdirSync(cache, { recursive: true });
  const log = openSync(path.join(runDir, "logs", "repo-mirror-sync.log"), "w");
  const child = spawn(process.execPath, [...NODE_FLAGS, bundle, "sync", "--cache", cache, url], {
    stdio: ["ignore", log, log],
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" },
  });
  const [code] = (await once(child, "exit")) as [number | null];
  closeSync(log);
  return code ?? 1;
}

function bundlePath(root: string, program: string): string {
  return path.join(root, "containers", program, "dist", `${program}.mjs`);
}

function checkBundles(containers: { program?: string }[], root: string): void {
  const missing = containers
    .map((c) => c.program)
    .filter((p): p is string => p !== undefined && !existsSync(bundlePath(root, p)));
  if (missing.length > 0) {
    throw new BuildpodError(
      "BUILDPOD_BUNDLES_MISSING",
      `the bundles of ${[...new Set(missing)].join(", ")} are not built`,
      {
        exitCode: ExitCode.CONFIG,
        hint: "run `pnpm run build` first",
      },
    );
  }
}

/** The Buildkite job env a real agent would set, made up for this run where not given. */
function withLocalJobEnv(description: BuildEnvironment, buildId: string) {
  const env = description.spec.buildkite;
  env.BUILDKITE_BUILD_ID ??= buildId;
  env.BUILDKITE_JOB_ID ??= randomUUID();
  env.BUILDKITE_PIPELINE_SLUG ??= description.metadata.name;
  env.BUILDKITE_ORGANIZATION_SLUG ??= "local";
  env.BUILDKITE_STEP_KEY ??= "build";
}

/** Without a sinks file of the user's, records go to a `file` sink in the run folder. */
function prepareLocalSinks(description: BuildEnvironment, runDir: string, sinkFile: string) {
  const logs = description.spec.logs;
  if (!logs || logs.localSinksFile) return;
  const file = path.join(runDir, "config", "log-sinks.yaml");
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(
    file,
    stringify({ default: "local", sinks: { local: { type: "file", path: sinkFile } } }),
  );
  logs.localSinksFile = file;
}

/**
 * Scrapes the metrics endpoint the way Prometheus would, once the workload's metrics should be
 * visible (the exporter promises a changed file within a second): retried until they are, for
 * up to five seconds. What the run checks is the last answer.
 */
async function scrapeOnce(description: BuildEnvironment, context: LocalPodContext) {
  const port = description.spec.metrics?.prometheus?.port;
  const local = port ? context.ports.get(port) : undefined;
  const metricsDir = context.volumes.get("metrics");
  if (!local || !metricsDir) return undefined;
  const expected = metricNamesBelow(path.join(metricsDir, "prometheus"));
  let body: string | undefined;
  const until = Date.now() + 5_000;
  do {
    try {
      const res = await fetch(`http://127.0.0.1:${local}/metrics`, {
        signal: AbortSignal.timeout(5_000),
      });
      body = res.ok ? await res.text() : undefined;
    } catch {
      body = undefined;
    }
    if (body && expected.every((name) => body?.includes(`\n${name}`))) return body;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < until);
  return body;
}

async function endToEndChecks(
  description: BuildEnvironment,
  context: LocalPodContext,
  sinkFile: string,
  builds: string,
  buildId: string,
  scraped: string | undefined,
): Promise<Check[]> {
  const checks: Check[] = [];
  const { spec } = description;
  if (spec.logs) {
    const criFile = spec.logs.stdout ? context.criLogOf("workload") : undefined;
    checks.push(checkLogs({ criFile, logsDir: context.volumes.get("logs") }, sinkFile));
  }
  const artifactsDir = context.volumes.get("artifacts");
  if (spec.artifacts?.upload && artifactsDir && spec.artifacts.store === "buildkite") {
    checks.push(await checkArtifacts(artifactsDir, path.join(builds, buildId, "artifacts")));
  }
  const metricsDir = context.volumes.get("metrics");
  if (spec.metrics?.prometheus && metricsDir) {
    checks.push(checkScrape(scraped, metricNamesBelow(path.join(metricsDir, "prometheus"))));
  }
  return checks;
}
