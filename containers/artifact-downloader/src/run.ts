import {
  effectiveStore,
  resolveToken,
  StoreError,
  type StoreSpec,
  storeFromConfig,
} from "@buildpod/artifact-store";
import { ConfigError, type ConfigOf } from "@buildpod/config";
import {
  addSecrets,
  BuildpodError,
  defineCommand,
  ExitCode,
  type Outcome,
  type RunContext,
} from "@buildpod/runtime";
import { Counter } from "prom-client";
import { options } from "./config.ts";
import {
  type DownloadEvent,
  type DownloadReport,
  downloadArtifacts,
  unmatchedError,
} from "./download.ts";
import { startProgress } from "./progress.ts";

type Config = ConfigOf<typeof options>;

/** Attempts of one artifact's whole download; each request inside is retried by the store. */
const ARTIFACT_RETRY = { attempts: 3, baseDelayMs: 1_000, maxDelayMs: 5_000 };

export const download = defineCommand({
  description: "search a build's artifacts and download the matches into a directory",
  kind: "init",
  options,
  run,
  // --print-config shows the store taken when --store is left out.
  effective: (config) => effectiveStore(config),
});

async function run(ctx: RunContext<Config>): Promise<Outcome> {
  const { config, logger } = ctx;
  if (config.required && config.query.length === 0) {
    // Nothing asked for cannot be required: a query left out of the config, not a success.
    throw new ConfigError([
      {
        key: "required",
        source: ctx.sources.required,
        expected: "a query to go with it, since nothing would be downloaded",
        hint:
          "give --query GLOB (ARTIFACT_DOWNLOADER_QUERY, or query: in the config file), " +
          "or drop --required",
      },
    ]);
  }
  const buildId = config.build ?? "";
  const opened = await openStore(ctx, buildId);
  if (config.query.length === 0) {
    logger.info("no query given: nothing to download");
    await opened.store.close();
    return { exitCode: ExitCode.OK, summary: { queries: config.query, downloaded: 0 } };
  }
  // A dir: store holds no builds: its matches are named by the store, not a build ID.
  const searched = opened.spec.kind === "buildkite" ? `build ${buildId}` : opened.store.name;
  const why = config.store ? undefined : defaultStoreNote(opened.spec);
  logger.info(
    {
      store: opened.store.name,
      endpoint: opened.endpoint,
      ...(opened.spec.kind === "buildkite" ? { build: buildId } : {}),
      queries: config.query,
      dest: config.dest,
    },
    "downloading artifacts",
  );

  const progress = startProgress(logger, config.progressInterval);
  const started = Date.now();
  let report: DownloadReport;
  try {
    report = await downloadArtifacts({
      store: opened.store,
      queries: config.query,
      buildId,
      scope: config.step,
      includeRetriedJobs: config.includeRetriedJobs,
      required: config.required,
      dest: config.dest,
      concurrency: config.concurrency,
      retry: ARTIFACT_RETRY,
      signal: ctx.signal,
      onBytes: progress.addBytes,
      onEvent: reporter(ctx, progress),
    });
  } catch (err) {
    if (ctx.signal.aborted) return interrupted(ctx, undefined);
    throw asFailure(err, why);
  } finally {
    progress.stop();
    await opened.store.close();
  }
  if (ctx.signal.aborted) return interrupted(ctx, report);
  return outcome(report, config, searched, why, Date.now() - started, logger);
}

/**
 * Why a store nobody named was used: without a token or an endpoint the embedded dir store is
 * searched, which a job that meant to download from Buildkite would not expect.
 */
function defaultStoreNote(spec: StoreSpec): string | undefined {
  if (spec.kind !== "dir") return undefined;
  return (
    `the dir store at ${spec.root} was used because no Buildkite token or ` +
    "endpoint was given; set BUILDKITE_AGENT_ACCESS_TOKEN (or --token-file) and " +
    "BUILDKITE_BUILD_ID to download a build's artifacts, or give --store dir:PATH"
  );
}

/**
 * A stop signal ended the run (the pod is being deleted): one line saying how far it got, and
 * exit 130. Nothing is left half-written, since each file is renamed into place whole.
 */
function interrupted(ctx: RunContext<Config>, report: DownloadReport | undefined): Outcome {
  const why = (ctx.signal.reason as Error | undefined)?.message ?? "a stop signal";
  const done = report
    ? `after ${report.downloaded} of ${report.found} artifacts`
    : "while searching artifacts";
  const error =
    `could not finish the download: interrupted (${why}) ${done}; no file is left ` +
    "half-written, so running it again is safe";
  ctx.logger.error({ code: "ARTIFACT_DOWNLOADER_INTERRUPTED" }, error);
  return {
    exitCode: ExitCode.INTERRUPTED,
    summary: {
      ...(ctx.config.build ? { build: ctx.config.build } : {}),
      queries: ctx.config.query,
      found: report?.found ?? 0,
      downloaded: report?.downloaded ?? 0,
      bytes: report?.bytes ?? 0,
      refused: report?.refused ?? [],
      failed: report?.failed ?? [],
      interrupted: true,
      error,
      code: "ARTIFACT_DOWNLOADER_INTERRUPTED",
    },
  };
}

async function openStore(ctx: RunContext<Config>, buildId: string) {
  const { config } = ctx;
  try {
    // A token read from the lifecycle dir is no configured secret: have it scrubbed as well.
    const token = await resolveToken({
      token: config.token,
      lifecycleDir: ctx.common.lifecycleDir,
    });
    if (token) addSecrets(ctx.logger, [token]);
    const opened = await storeFromConfig({
      store: config.store,
      endpoint: config.endpoint,
      token: config.token,
      lifecycleDir: ctx.common.lifecycleDir,
      timeoutMs: config.requestTimeout,
      concurrency: config.concurrency,
      userAgent: "buildpod-artifact-downloader",
      onRetry: ({ attempt, delayMs, err }) =>
        ctx.logger.warn({ attempt, delay_ms: delayMs, err }, "request failed, retrying"),
    });
    if (opened.spec.kind === "buildkite" && !buildId && config.query.length > 0) {
      throw new StoreError(
        "ARTIFACT_DOWNLOADER_NO_BUILD",
        "could not search artifacts: no build ID was given; set --build ID or " +
          "BUILDKITE_BUILD_ID (a Buildkite job has it in its env), or use a dir: store",
      );
    }
    return opened;
  } catch (err) {
    if (err instanceof StoreError) {
      throw new BuildpodError(err.code, err.message, { exitCode: ExitCode.CONFIG, cause: err });
    }
    throw err;
  }
}

function outcome(
  report: DownloadReport,
  config: Config,
  searched: string,
  why: string | undefined,
  durationMs: number,
  logger: RunContext<Config>["logger"],
): Outcome {
  let exitCode: number = ExitCode.OK;
  if (report.refused.length > 0) exitCode = ExitCode.REJECTED;
  if (report.failed.length > 0) exitCode = ExitCode.FAILED;
  let error: string | undefined;
  if (report.unmatched.length > 0) {
    const err = unmatchedError(report.unmatched, searched);
    if (config.required) {
      exitCode = ExitCode.FAILED;
      error = why ? `${err.message}; ${why}` : err.message;
      logger.error({ code: err.code }, error);
    } else {
      logger.warn({ queries: report.unmatched }, "some queries matched no artifact");
    }
  }
  const seconds = Math.max(durationMs, 1) / 1000;
  return {
    exitCode,
    summary: {
      ...(config.build ? { build: config.build } : {}),
      queries: config.query,
      found: report.found,
      downloaded: report.downloaded,
      bytes: report.bytes,
      mib_per_second: Number((report.bytes / 1024 ** 2 / seconds).toFixed(1)),
      duplicates: report.duplicates,
      unmatched: report.unmatched,
      refused: report.refused,
      failed: report.failed,
      ...(error ? { error } : {}),
    },
  };
}

/** Logs each download event, counts it, and feeds the progress lines. */
function reporter(ctx: RunContext<Config>, progress: ReturnType<typeof startProgress>) {
  const logger = ctx.logger;
  const files = new Counter({
    name: "artifact_downloader_files_total",
    help: "artifacts handled, by result: downloaded, failed or refused",
    labelNames: ["result"],
    registers: [ctx.metrics],
  });
  return (e: DownloadEvent) => {
    if (e.type === "searched") {
      progress.addExpected(e.added);
      logger.info({ query: e.query, files: e.found }, "searched artifacts");
    } else if (e.type === "duplicate") {
      const fields = { path: e.path, kept: e.kept, dropped: e.dropped };
      logger.warn(fields, "two artifacts share a path: the newest wins");
    } else if (e.type === "refused") {
      files.inc({ result: "refused" });
      logger.error({ path: e.path }, `refused artifact path: ${e.why}; nothing was written for it`);
    } else if (e.type === "downloaded") {
      progress.addFile();
      files.inc({ result: "downloaded" });
      logger.debug({ path: e.path, bytes: e.bytes }, "downloaded artifact");
    } else {
      files.inc({ result: "failed" });
      logger.error({ path: e.path, err: e.err }, "could not download artifact");
    }
  };
}

/** A store error as the run's failure (exit 1); a missing dir store says why it was used. */
function asFailure(err: unknown, why?: string): unknown {
  if (err instanceof StoreError) {
    const hint = err.code === "ARTIFACT_STORE_DIR_MISSING" ? why : undefined;
    return new BuildpodError(err.code, err.message, {
      exitCode: ExitCode.FAILED,
      cause: err,
      hint,
    });
  }
  return err;
}
