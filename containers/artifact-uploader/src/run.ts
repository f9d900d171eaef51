import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  effectiveStore,
  resolveToken,
  type StoreConfig,
  StoreError,
  storeFromConfig,
} from "@buildpod/artifact-store";
import type { ConfigOf } from "@buildpod/config";
import {
  addSecrets,
  BuildpodError,
  defineCommand,
  ExitCode,
  type Outcome,
  type RunContext,
} from "@buildpod/runtime";
import { CompletionWatcher, type VolumeWatchWarning } from "@buildpod/volume-watch";
import { Counter, Gauge } from "prom-client";
import { noMultipartHint, options } from "./config.ts";
import { sweep } from "./sweep.ts";
import { Uploader, type UploaderEvent, type UploaderReport } from "./uploader.ts";

type Config = ConfigOf<typeof options>;
type Logger = RunContext<Config>["logger"];

export const watch = defineCommand({
  description: "upload each complete file below the root as a Buildkite artifact",
  kind: "sidecar",
  options,
  run,
  // --print-config shows the store taken when --store is left out.
  effective: (config) => effectiveStore(config),
});

async function run(ctx: RunContext<Config>): Promise<Outcome> {
  const { config, logger } = ctx;
  const { store, endpoint } = await openStore(ctx);
  const uploader = new Uploader({
    store,
    root: config.root,
    batchSize: config.batchSize,
    batches: config.batches,
    retryDelayMs: config.retryDelay,
    contentType: config.contentType,
    onEvent: reporter(ctx),
  });
  new Gauge({
    name: "artifact_uploader_pending_files",
    help: "files seen complete but not uploaded yet",
    registers: [ctx.metrics],
    collect() {
      this.set(uploader.pending);
    },
  });

  // Watch: each file complete in a state is queued once for that state.
  const warn = warner(logger, uploader);
  const files = new CompletionWatcher({
    root: config.root,
    include: config.include,
    exclude: config.exclude,
    quietPeriodMs: config.quietPeriod,
    usePolling: config.poll,
  });
  files.on("complete", (f) => uploader.enqueue(f));
  files.on("unlink", (f) => uploader.forget(f.path));
  files.on("warning", warn);
  // A workload that had already finished when this sidecar started (a restarted sidecar, a
  // local run) leaves nothing to watch: the drain's sweep alone finds every file. The
  // lifecycle reads the marker file as it starts; this gives that read a moment to answer.
  const watching = !(await finishedWithin(ctx.lifecycle.finished, MARKER_GRACE_MS));
  try {
    if (watching) await files.start();
    else await checkRoot(config.root);
  } catch (err) {
    await store.close();
    const why = ((err as Error).cause ?? err) as Error;
    throw new BuildpodError(
      "ARTIFACT_UPLOADER_NO_ROOT",
      `could not watch ${config.root}: ${why.message}; mount the artifacts volume there or set --root`,
      { exitCode: ExitCode.CONFIG, cause: err },
    );
  }
  const what = watching ? "watching for artifacts" : "the workload had finished: sweeping once";
  logger.info({ store: store.name, endpoint, root: config.root }, what);

  // Drain: the final sweep catches everything not yet queued, bounded by the deadline.
  const finished = await ctx.lifecycle.finished;
  logger.info({ reason: finished.reason, detail: finished.detail }, "workload finished: draining");
  const deadline = ctx.lifecycle.drainSignal();
  const started = Date.now();
  let report: UploaderReport;
  try {
    // Files seen but not yet quiet start uploading at once; the sweep then queues the whole
    // tree as it walks it. A file queued twice goes up once.
    uploader.startDrain(files.pending());
    const filter = { root: config.root, include: config.include, exclude: config.exclude };
    await sweep(filter, deadline, (found) => uploader.startDrain(found), warn);
    await files.close();
    report = await uploader.drain([], deadline);
  } finally {
    await files.close();
    await store.close();
  }
  return outcome(report, Date.now() - started, logger);
}

async function checkRoot(root: string): Promise<void> {
  if (!(await stat(root)).isDirectory()) throw new Error("it is not a directory");
}

/** How long the start waits to learn whether the workload has already finished. */
const MARKER_GRACE_MS = 200;

/** True when `finished` resolves within `ms`. */
async function finishedWithin(finished: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const late = sleep(ms, false, { signal: timer.signal }).catch(() => false);
  const first = await Promise.race([finished.then(() => true), late]);
  timer.abort();
  return first;
}

/**
 * Logs each watcher or sweep warning once (the sweep passes the same symlinks and FIFOs the
 * watcher already reported) and records refused paths with the uploader.
 */
function warner(logger: Logger, uploader: Uploader) {
  const seen = new Set<string>();
  return (w: VolumeWatchWarning) => {
    const key = `${w.code}\0${w.path ?? ""}`;
    if (w.path !== undefined && seen.has(key)) return;
    seen.add(key);
    logger.warn({ path: w.path, code: w.code, err: w.cause }, w.message);
    if (w.path && (w.code === "symlink-outside-root" || w.code === "special-file")) {
      uploader.refuse(w.path, w.message);
    }
  };
}

async function openStore(ctx: RunContext<Config>) {
  const { config } = ctx;
  const settings: StoreConfig = {
    store: config.store,
    endpoint: config.endpoint,
    token: config.token,
    lifecycleDir: ctx.common.lifecycleDir,
    jobId: config.job,
    timeoutMs: config.requestTimeout,
    concurrency: config.concurrency,
    multipart: !config.noMultipart,
    noMultipartHint: noMultipartHint(ctx.sources.noMultipart),
    userAgent: "buildpod-artifact-uploader",
    onRetry: ({ attempt, delayMs, err }) =>
      ctx.logger.warn({ attempt, delay_ms: delayMs, err }, "request failed, retrying"),
  };
  try {
    // A token read from the lifecycle dir is no configured secret: have it scrubbed as well.
    const token = await resolveToken({
      token: config.token,
      lifecycleDir: ctx.common.lifecycleDir,
    });
    if (token) addSecrets(ctx.logger, [token]);
    const opened = await storeFromConfig(settings);
    if (opened.spec.kind === "dir" && (await storeInsideRoot(opened.spec.root, config.root))) {
      await opened.store.close();
      throw new StoreError(
        "ARTIFACT_UPLOADER_STORE_IN_ROOT",
        `could not use store ${opened.store.name}: it lies inside --root ${config.root}, so every copy would be uploaded again; give --store dir:PATH outside the root`,
      );
    }
    if (opened.spec.kind === "buildkite" && !config.job) {
      await opened.store.close();
      throw new StoreError(
        "ARTIFACT_UPLOADER_NO_JOB",
        "could not upload to buildkite: no job ID; set --job or BUILDKITE_JOB_ID",
      );
    }
    return opened;
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    throw new BuildpodError(err.code, err.message, { exitCode: ExitCode.CONFIG, cause: err });
  }
}

/**
 * True when a dir store's directory is the root or lies below it (compared by real paths where
 * they exist): the uploader would then write into the tree it only reads, and upload its copies.
 */
async function storeInsideRoot(storeRoot: string, root: string): Promise<boolean> {
  const rel = path.relative(await realPath(root), await realPath(storeRoot));
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
async function realPath(p: string): Promise<string> {
  const absolute = path.resolve(p);
  try {
    return await realpath(absolute);
  } catch {
    const parent = path.dirname(absolute);
    if (parent === absolute) return absolute;
    return path.join(await realPath(parent), path.basename(absolute));
  }
}

/** Logs each uploader event and counts it. */
function reporter(ctx: RunContext<Config>) {
  const logger = ctx.logger;
  const files = new Counter({
    name: "artifact_uploader_files_total",
    help: "files handled, by result: uploaded, failed (will retry), refused, vanished",
    labelNames: ["result"],
    registers: [ctx.metrics],
  });
  const bytes = new Counter({
    name: "artifact_uploader_bytes_total",
    help: "bytes of files uploaded",
    registers: [ctx.metrics],
  });
  return (e: UploaderEvent) => {
    if (e.type === "uploaded") {
      files.inc({ result: "uploaded" });
      bytes.inc(e.bytes);
      logger.debug({ path: e.path, bytes: e.bytes, reupload: e.reupload }, "uploaded artifact");
    } else if (e.type === "failed") {
      files.inc({ result: "failed" });
      const what = e.willRetry
        ? "could not upload artifact, will retry"
        : "could not upload artifact";
      logger.warn({ path: e.path, err: e.err }, what);
    } else if (e.type === "refused") {
      files.inc({ result: "refused" });
      logger.error({ path: e.path, err: e.err }, "refused artifact: it is not uploaded");
    } else if (e.type === "vanished") {
      files.inc({ result: "vanished" });
      logger.info({ path: e.path }, "file deleted before it could be uploaded");
    } else {
      logger.info(
        { path: e.path },
        "file changed after its upload: uploading it again at the drain",
      );
    }
  };
}

function outcome(report: UploaderReport, durationMs: number, logger: Logger): Outcome {
  let exitCode: number = ExitCode.OK;
  if (report.refused.length > 0) exitCode = ExitCode.REJECTED;
  if (report.leftOver.length > 0) {
    exitCode = ExitCode.INCOMPLETE;
    logger.error(
      { files: report.leftOver.length },
      "drain deadline reached with files not uploaded; they are listed in the summary",
    );
  }
  return {
    exitCode,
    summary: {
      uploaded: report.uploaded,
      bytes: report.bytes,
      drain_ms: durationMs,
      reuploaded: report.reuploaded,
      left_over: report.leftOver,
      refused: report.refused,
      vanished: report.vanished,
    },
  };
}
