// The log-exporter sidecar: read every source, deliver to the chosen sink, commit checkpoints
// after the sink acknowledged, and at the workload's end read every source to its end, flush,
// and report whether everything was delivered.
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConfigOf } from "@buildpod/config";
import { defineCommand, ExitCode, type RunContext } from "@buildpod/runtime";
import { options } from "./config.ts";
import { DeadLetterFile } from "./dead-letter.ts";
import { createMetrics } from "./metrics.ts";
import { Channel, type Envelope, Pipeline } from "./pipeline.ts";
import { metaFromEnv } from "./record.ts";
import { checkSinkFiles, chooseSink, createSink, loadSinksFile } from "./sinks/index.ts";
import { buildSources } from "./sources/index.ts";

type Config = ConfigOf<typeof options> & {
  lifecycleDir: string;
  workloadContainer: string;
  kubernetesApi?: string;
  serviceAccountDir: string;
  podName?: string;
  podNamespace?: string;
};

/** How long a sink may take to close once the drain deadline has passed. */
const CLOSE_AFTER_DEADLINE_MS = 500;

/** At most one "could not reach the sink" warning per this period. */
const UNREACHABLE_WARN_MS = 10_000;

export const exportCommand = defineCommand({
  description: "ship every line the job writes to Elasticsearch, fluentd, Cloud Logging or a file",
  kind: "sidecar",
  options,
  run: (ctx) => run(ctx as unknown as RunContext<Config>),
  // --print-config shows the sink taken when --sink (or --sinks) is left out.
  effective: async (config) => {
    const chosen = sinkOf(config);
    return { sink: chosen.name, sinkType: chosen.spec.type };
  },
  // Records on stdout leave it to them: the program's own lines go to stderr.
  stdoutIsOutput: (config) => {
    try {
      return sinkOf(config).spec.type === "stdout";
    } catch {
      return false; // the run reports the sinks file's problems
    }
  },
});

/** The sink a run takes: from the sinks file (`--sink` or its default), else stdout. */
function sinkOf(config: Pick<Config, "sinks" | "sink">): ReturnType<typeof chooseSink> {
  return chooseSink(config.sinks ? loadSinksFile(config.sinks).file : undefined, config.sink);
}

async function run(ctx: RunContext<Config>) {
  const { config, logger } = ctx;
  const stateDir = config.stateDir ?? join(config.lifecycleDir, "log-exporter");
  const deadLetter = new DeadLetterFile(
    config.deadLetterFile ?? join(stateDir, "dead-letter.ndjson"),
  );
  const labels = Object.fromEntries(
    config.labels.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  // Files under /logs and the pod's output are the workload's: name its container in a pod.
  const inPod = ctx.env.POD_NAME !== undefined || ctx.env.KUBERNETES_SERVICE_HOST !== undefined;
  const meta = metaFromEnv(ctx.env, labels, inPod ? config.workloadContainer : undefined);
  const metrics = createMetrics(ctx.metrics);

  // The sink: from the cluster sinks file, or stdout for local runs.
  const sinks = config.sinks ? loadSinksFile(config.sinks, ctx.sources.sinks) : undefined;
  const chosen = chooseSink(sinks?.file, config.sink, ctx.sources.sink);
  if (sinks) checkSinkFiles(sinks, chosen.name, chosen.spec);
  // The sources before the sink: their configuration errors come before any file is opened.
  const sources = await buildSources(
    absolutePaths(config),
    ctx.env,
    stateDir,
    logger,
    metrics,
    ctx.sources,
  );
  // A sink that cannot be reached says so at once, then every UNREACHABLE_WARN_MS at most.
  let warnedAt = Number.NEGATIVE_INFINITY;
  const sink = await createSink(chosen.spec, meta, {
    retry: ({ attempt, delayMs, err, records, unreachable }) => {
      metrics.retries.inc();
      // An unreachable sink was reported as such (at most every UNREACHABLE_WARN_MS).
      if (unreachable) return;
      logger.warn(
        { err, attempt, delay_ms: delayMs, records, sink: chosen.name },
        "could not deliver a batch; retrying",
      );
    },
    unreachable: ({ attempt, err }) => {
      if (performance.now() - warnedAt < UNREACHABLE_WARN_MS) return;
      warnedAt = performance.now();
      logger.warn(
        { err, attempt, sink: chosen.name },
        "could not reach the sink; records wait until it answers",
      );
    },
  });

  if (sources.length === 0) logger.warn({ path: config.logs }, "no sources: nothing to export");
  logger.info(
    { sink: chosen.name, type: chosen.spec.type, sources: sources.map((s) => s.name) },
    "exporting logs",
  );

  const channel = new Channel<Envelope>(8);
  const deliverySignal = AbortSignal.any([ctx.signal, ctx.lifecycle.drainSignal()]);
  const pipeline = new Pipeline({
    sink,
    sinkName: chosen.name,
    deadLetter,
    maxBatchBytes: config.batchBytes,
    flushIntervalMs: config.flushInterval,
    concurrency: config.concurrency,
    onBatch: ({ records, delivered, rejected, ms }) => {
      metrics.delivered.inc(delivered);
      metrics.batchSeconds.observe(ms / 1000);
      if (rejected.length > 0) {
        metrics.deadLettered.inc(rejected.length);
        const first = rejected[0];
        logger.warn(
          {
            records,
            rejected: rejected.length,
            path: deadLetter.path,
            status: first?.status,
            reason: first?.reason,
          },
          "sink rejected records for good; written to the dead-letter file",
        );
      }
    },
  });
  metrics.watch(() => ({ pipeline: pipeline.stats, sources }));

  for (const source of sources) await source.start();
  const producing = sources.map((s) =>
    channel.pipeFrom(s.envelopes(), (err) =>
      logger.error({ err, source: s.name }, "could not read a source"),
    ),
  );
  // Nothing to read, but a sidecar still lives as long as the workload: one that exits at
  // once is restarted by the kubelet (a native sidecar) or reports success too early.
  if (sources.length === 0) void ctx.lifecycle.finished.then(() => channel.close());

  // The drain: when the workload ends, read every source to its end.
  let finishedDetail: string | undefined;
  ctx.lifecycle.finished.then((finished) => {
    finishedDetail = finished.detail;
    logger.info({ reason: finished.reason }, "workload finished; draining");
    for (const s of sources) s.drain();
  });

  const summaryNow = (undelivered: number) => ({
    sink: chosen.name,
    lines: pipeline.stats.read,
    delivered: pipeline.stats.delivered,
    dead_lettered: pipeline.stats.rejected,
    undelivered,
    batches: pipeline.stats.batches,
    ...(pipeline.stats.rejected > 0 ? { dead_letter_file: deadLetter.path } : {}),
    ...(finishedDetail ? { workload: finishedDetail } : {}),
  });
  // Should the drain overrun its deadline, everything read and not settled is undelivered.
  ctx.partialSummary(() => {
    const { read, delivered, rejected } = pipeline.stats;
    return summaryNow(read - delivered - rejected);
  });

  await pipeline.run(channel, deliverySignal);
  for (const s of sources) s.stop();
  await Promise.allSettled(producing);
  for (const s of sources) await s.close();
  const closing = sink.close().catch((err: unknown) => {
    logger.warn({ err }, "could not close the sink");
  });
  // Past the deadline nothing more is delivered: do not wait out a client's own flush of
  // what it still queues (fluentd's waits up to 5 s for an unreachable server).
  await (deliverySignal.aborted
    ? Promise.race([closing, sleep(CLOSE_AFTER_DEADLINE_MS)])
    : closing);

  const stats = pipeline.stats;
  const incomplete = stats.undelivered > 0 || deliverySignal.aborted;
  const summary = summaryNow(stats.undelivered);
  if (incomplete) {
    // The drain signal says why it ended: its deadline (a TimeoutError) or a second signal.
    const deadline = (deliverySignal.reason as Error | undefined)?.name === "TimeoutError";
    const why = deadline
      ? "drain deadline reached"
      : deliverySignal.aborted
        ? "stopped at once by a second stop signal"
        : "the drain ended";
    logger.error(summary, `${why} with records undelivered`);
    return { exitCode: ExitCode.INCOMPLETE, summary };
  }
  return { exitCode: stats.rejected > 0 ? ExitCode.REJECTED : ExitCode.OK, summary };
}

/**
 * The source paths made absolute (from the working directory): every record carries its
 * file's path as `log.file.path`, which must not depend on where the exporter was started.
 */
function absolutePaths(config: Config): Config {
  return {
    ...config,
    logs: resolve(config.logs),
    paths: config.paths.map((glob) => resolve(glob)),
    criLogDir: config.criLogDir === undefined ? undefined : resolve(config.criLogDir),
  };
}
