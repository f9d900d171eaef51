/**
 * The sidecar's engine: one watch of the metrics root, and for each enabled output its
 * directory of `*.prom` files, re-read when a file changes and handed to the output:
 *
 *   prometheus/       -> ScrapeExposition (served at --listen)
 *   prometheus-push/  -> Pusher (PUT to the Pushgateway group)
 *   datadog/          -> DatadogForwarder (DogStatsD or the HTTP API)
 *
 * It owns no policy beyond ordering: outputs are independent, and one broken file only
 * affects itself (see merge.ts for the conflict rule).
 */
import { mkdir } from "node:fs/promises";
import { BuildpodError, ExitCode, type Logger, worstExitCode } from "@buildpod/runtime";
import { TreeWatcher } from "@buildpod/volume-watch";
import type { Registry } from "prom-client";
import type { MappingOptions } from "./datadog.ts";
import type { DatadogSink } from "./datadog-sinks.ts";
import { renderText } from "./exposition.ts";
import { DatadogForwarder } from "./forwarder.ts";
import { type Conflict, mergeFiles } from "./merge.ts";
import { type ExporterMetrics, exporterMetrics } from "./metrics.ts";
import { formatProblem } from "./parse.ts";
import { PushClient, Pusher, type PushTarget } from "./pushgateway.ts";
import { ScrapeExposition, type ScrapeServer, serveScrapes } from "./scrape.ts";
import { type RefreshResult, TextfileDir } from "./textfiles.ts";

export const SUBDIRS = {
  serve: "prometheus",
  push: "prometheus-push",
  datadog: "datadog",
} as const;
type OutputName = keyof typeof SUBDIRS;

export interface ExporterOptions {
  root: string;
  serve?: { host: string; port: number };
  push?: {
    target: PushTarget;
    debounceMs: number;
    retention: "keep" | "delete";
    deleteAfterMs: number;
  };
  datadog?: { sink: DatadogSink; mapping: MappingOptions; intervalMs: number };
  incompleteGraceMs: number;
  rescanIntervalMs: number;
  /** How long the drain keeps serving for one scrape of the final exposition; 0: no wait. */
  finalScrapeWaitMs?: number;
  logger: Logger;
  metrics: Registry;
}

interface Output {
  name: OutputName;
  dir: TextfileDir;
  /** Problems and conflicts of the last refresh, as logged (to log each once). */
  reported: Set<string>;
  last?: RefreshResult;
  conflicts: Conflict[];
  timer?: NodeJS.Timeout;
  refreshing?: Promise<void>;
  again: boolean;
}

/** Delay between a file event and the refresh, so that a burst of writes is read once. */
const EVENT_DELAY_MS = 50;
/** Delay before reading a file again that was incomplete or changing. */
const RETRY_DELAY_MS = 250;

export class Exporter {
  readonly exposition = new ScrapeExposition();
  server?: ScrapeServer;
  private readonly opts: ExporterOptions;
  private readonly log: Logger;
  private readonly m: ExporterMetrics;
  private readonly outputs = new Map<OutputName, Output>();
  private watcher?: TreeWatcher;
  private pusher?: Pusher;
  private forwarder?: DatadogForwarder;
  private pushRejections = 0;
  private pushes = 0;
  private closed = false;

  constructor(opts: ExporterOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.m = exporterMetrics(opts.metrics, () => this.exposition.scrapes);
    const enabled: OutputName[] = [];
    if (opts.serve) enabled.push("serve");
    if (opts.push) enabled.push("push");
    if (opts.datadog) enabled.push("datadog");
    for (const name of enabled) {
      const dir = new TextfileDir({
        dir: `${opts.root.replace(/\/+$/, "")}/${SUBDIRS[name]}`,
        settleMs: opts.incompleteGraceMs,
      });
      this.outputs.set(name, { name, dir, reported: new Set(), conflicts: [], again: false });
    }
  }

  /** Starts the outputs and the watch; resolves once every file present was read once. */
  async start(): Promise<void> {
    if (this.opts.serve) {
      const { host, port } = this.opts.serve;
      this.server = await serveScrapes(this.exposition, this.opts.serve).catch((err: Error) => {
        throw new BuildpodError(
          "METRICS_EXPORTER_LISTEN_FAILED",
          `could not listen on ${host}:${port}: ${err.message}`,
          { exitCode: ExitCode.FAILED, hint: "give a free address with --listen", cause: err },
        );
      });
      this.log.info({ address: this.server.address }, "serving prometheus/*.prom at /metrics");
    }
    if (this.opts.push) this.pusher = this.startPusher(this.opts.push);
    if (this.opts.datadog) {
      const { sink, mapping, intervalMs } = this.opts.datadog;
      this.forwarder = new DatadogForwarder(sink, { mapping, intervalMs, debounceMs: 500 });
      this.forwarder.on("skipped", (s) =>
        this.log.warn({ metric: s.metric }, `datadog: left out ${s.metric}: ${s.reason}`),
      );
      this.forwarder.on("sent", (r) => this.m.datadog(r));
    }
    if (this.outputs.size === 0) return;

    // The volume normally exists; create it so that a job that never writes metrics is fine.
    await mkdir(this.opts.root, { recursive: true }).catch(() => undefined);
    this.watcher = new TreeWatcher({
      root: this.opts.root,
      include: [...this.outputs.keys()].map((o) => `${SUBDIRS[o]}/*.prom`),
      rescanIntervalMs: this.opts.rescanIntervalMs,
    });
    const onEvent = (f: { path: string }) => {
      for (const out of this.outputs.values()) {
        if (f.path.startsWith(`${SUBDIRS[out.name]}/`)) this.schedule(out, EVENT_DELAY_MS);
      }
    };
    this.watcher.on("add", onEvent).on("change", onEvent).on("unlink", onEvent);
    this.watcher.on("warning", (w) => this.log.warn({ path: w.path, code: w.code }, w.message));
    await this.watcher.start().catch((err: Error) => {
      throw new BuildpodError("METRICS_EXPORTER_ROOT_UNREADABLE", err.message, {
        exitCode: ExitCode.FAILED,
        hint: "mount the metrics volume at --root",
        cause: err,
      });
    });
    await Promise.all([...this.outputs.values()].map((o) => this.refresh(o)));
  }

  /**
   * The drain: stop watching, read every directory one last time, then push, delete (if the
   * retention says so) and send to Datadog within `signal`. Returns the exit code and summary.
   */
  async drain(
    signal: AbortSignal,
  ): Promise<{ exitCode: number; summary: Record<string, unknown> }> {
    await this.watcher?.close();
    for (const out of this.outputs.values()) {
      clearTimeout(out.timer);
      while (out.refreshing !== undefined) await out.refreshing;
      await this.refreshNow(out, true);
    }
    const codes: number[] = [ExitCode.OK];
    const dirs: Record<string, unknown> = {};
    for (const out of this.outputs.values()) {
      const files = out.last?.files ?? [];
      const broken = files.filter((f) => f.status !== "ok");
      dirs[SUBDIRS[out.name]] = {
        files: files.length,
        invalid: broken.length,
        conflicts: out.conflicts.length,
      };
      if (broken.length > 0 || out.conflicts.length > 0) codes.push(ExitCode.REJECTED);
    }
    const summary: Record<string, unknown> = { dirs };
    if (this.server) summary.final_scrape = await this.awaitFinalScrape(signal);
    if (this.pusher) codes.push(await this.drainPush(signal, summary));
    if (this.forwarder) codes.push(await this.drainDatadog(signal, summary));
    return { exitCode: worstExitCode(...codes), summary };
  }

  /**
   * A workload often writes its metrics last, just before it exits; without this the drain
   * would stop serving before any scraper saw them. Waits until one scrape was served after
   * the final refresh, bounded by `finalScrapeWaitMs` and the drain deadline. A scraper that
   * never comes costs that wait and nothing else: the summary says whether one came.
   */
  private async awaitFinalScrape(signal: AbortSignal): Promise<boolean> {
    const waitMs = this.opts.finalScrapeWaitMs ?? 0;
    if (waitMs <= 0) return this.exposition.scrapedSinceUpdate();
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(waitMs)]);
    const started = performance.now();
    const scraped = await this.exposition.waitForScrape(bounded);
    // What was waited, which the drain deadline may have cut short of `finalScrapeWaitMs`.
    const fields = {
      wait_ms: Math.round(performance.now() - started),
      scrapes: this.exposition.scrapes,
    };
    if (scraped) this.log.info(fields, "the final metrics were scraped");
    else this.log.info(fields, "no scrape of the final metrics came within the wait");
    return scraped;
  }

  /** Stops serving and closes connections. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watcher?.close();
    for (const out of this.outputs.values()) clearTimeout(out.timer);
    await this.server?.close();
    await this.pusher?.close();
    await this.forwarder?.close();
  }

  private startPusher(push: NonNullable<ExporterOptions["push"]>): Pusher {
    const pusher = new Pusher(new PushClient(push.target), {
      debounceMs: push.debounceMs,
      retry: { minMs: 500, maxMs: 30_000 },
    });
    const url = redactedUrl(pusher.client.url);
    pusher.on("pushed", (p) => {
      this.pushes++;
      this.m.push("ok");
      this.log.info(
        { url, bytes: p.bytes, duration_ms: p.duration_ms },
        "pushed to the pushgateway",
      );
    });
    pusher.on("retry", (r) => {
      this.m.push("retry");
      this.log.warn(
        { url, attempt: r.attempt, status: r.status, delay_ms: r.delay_ms },
        `could not push to the pushgateway: ${r.reason}; retrying`,
      );
    });
    pusher.on("rejected", (r) => {
      this.pushRejections++;
      this.m.push("rejected");
      this.log.error(
        { url, status: r.status },
        `the pushgateway refused the push: ${r.reason}; fix the files in ${SUBDIRS.push}/ (the push is not retried until they change)`,
      );
    });
    return pusher;
  }

  private async drainPush(signal: AbortSignal, summary: Record<string, unknown>): Promise<number> {
    const pusher = this.pusher as Pusher;
    const push = this.opts.push as NonNullable<ExporterOptions["push"]>;
    const result = await pusher.flush(signal);
    let deleted = false;
    if (result.delivered && push.retention === "delete") {
      await sleep(push.deleteAfterMs, signal);
      deleted = !signal.aborted && (await pusher.remove(signal));
      if (deleted) {
        this.log.info({ url: redactedUrl(pusher.client.url) }, "deleted the pushgateway group");
      }
    }
    summary.pushgateway = {
      pushes: this.pushes,
      rejected: this.pushRejections,
      delivered: result.delivered,
      deleted,
    };
    if (result.rejected !== undefined || this.pushRejections > 0) return ExitCode.REJECTED;
    if (!result.delivered) return ExitCode.INCOMPLETE;
    if (push.retention === "delete" && !deleted) return ExitCode.INCOMPLETE;
    return ExitCode.OK;
  }

  private async drainDatadog(
    signal: AbortSignal,
    summary: Record<string, unknown>,
  ): Promise<number> {
    const forwarder = this.forwarder as DatadogForwarder;
    const delivered = await forwarder.drain(signal);
    const t = forwarder.totals;
    summary.datadog = {
      via: forwarder.sink.kind,
      points: t.sent,
      rejected: t.rejected,
      oversized: t.oversized,
      undelivered: forwarder.undelivered,
    };
    if (!delivered) {
      this.log.error(
        { points: forwarder.undelivered },
        `could not deliver to datadog: ${t.lastFailure}`,
      );
      return ExitCode.INCOMPLETE;
    }
    return t.rejected > 0 || t.oversized > 0 ? ExitCode.REJECTED : ExitCode.OK;
  }

  /** Refreshes an output's directory after `delayMs`, once, however many events arrive. */
  private schedule(out: Output, delayMs: number) {
    if (this.closed || out.timer !== undefined) return;
    out.timer = setTimeout(() => {
      out.timer = undefined;
      void this.refresh(out);
    }, delayMs);
    out.timer.unref();
  }

  /** Runs one refresh at a time per output; a request during a refresh runs it again after. */
  private async refresh(out: Output): Promise<void> {
    if (out.refreshing !== undefined) {
      out.again = true;
      return out.refreshing;
    }
    out.refreshing = (async () => {
      do {
        out.again = false;
        await this.refreshNow(out, false).catch((err: unknown) => {
          this.log.error({ err, path: out.dir.dir }, "could not refresh the metrics directory");
        });
      } while (out.again && !this.closed);
    })().finally(() => {
      out.refreshing = undefined;
    });
    return out.refreshing;
  }

  private async refreshNow(out: Output, final: boolean): Promise<void> {
    const started = performance.now();
    const result = await out.dir.refresh();
    if (result.retry && !final) this.schedule(out, RETRY_DELAY_MS);
    if (!result.changed && out.last !== undefined && !final) return;
    out.last = result;
    const files = final ? result.files.map(finalState) : result.files;
    const used = files.filter((f) => f.status === "ok" || f.status === "stale");

    let series: number;
    if (out.name === "serve") {
      const report = this.exposition.update(files, result.warnings);
      out.conflicts = report.conflicts;
      series = report.series;
    } else {
      const merged = mergeFiles(used.map((f) => ({ file: f.path, families: f.families })));
      out.conflicts = merged.conflicts;
      series = merged.families.reduce((n, f) => n + f.samples.length, 0);
      if (out.name === "push") {
        this.pushTimestampsWarning(used);
        // An empty directory only deletes the group's metrics if something was pushed before.
        if (used.length > 0 || this.pushes > 0) {
          this.pusher?.update(renderText(merged.families, { timestamps: false }));
        }
      } else {
        this.forwarder?.update(merged.families);
      }
    }
    this.report(out, files, result.warnings);
    this.m.refreshed(SUBDIRS[out.name], series, files, out.conflicts);
    this.log.debug(
      {
        path: out.dir.dir,
        files: files.length,
        series,
        duration_ms: Math.round(performance.now() - started),
      },
      "read metrics files",
    );
  }

  /** Logs new problems and conflicts once; each stays reported until it is gone. */
  private report(out: Output, files: RefreshResult["files"], warnings: string[]) {
    const now = new Set<string>();
    const emit = (key: string, log: () => void) => {
      now.add(key);
      if (!out.reported.has(key)) log();
    };
    for (const w of warnings) emit(w, () => this.log.warn({ path: out.dir.dir }, w));
    for (const f of files) {
      for (const p of f.problems) {
        const text = formatProblem(p);
        emit(text, () =>
          this.log.warn(
            { path: f.path, line: p.line, metric: p.metric },
            `could not use ${f.path}: ${text}`,
          ),
        );
      }
    }
    for (const c of out.conflicts) {
      const text = `${c.file}:${c.line}: metric ${c.metric}: ${c.kind} conflict with ${c.firstFile}:${c.firstLine}: ${c.message}`;
      emit(text, () => {
        this.m.conflict(SUBDIRS[out.name], c.kind);
        this.log.warn({ path: c.file, line: c.line, metric: c.metric, kind: c.kind }, text);
      });
    }
    out.reported = now;
  }

  private readonly warnedTimestamps = new Set<string>();

  private pushTimestampsWarning(
    files: readonly { path: string; timestamps: number; mtimeSeconds: number }[],
  ) {
    for (const f of files) {
      const key = `${f.path}@${f.mtimeSeconds}`;
      if (f.timestamps === 0 || this.warnedTimestamps.has(key)) continue;
      this.warnedTimestamps.add(key);
      this.log.warn(
        { path: f.path, samples: f.timestamps },
        `stripped sample timestamps from ${f.path}: the pushgateway rejects them; write samples without timestamps`,
      );
    }
  }
}

/** At the drain a file still not whole is a problem, whatever the grace period. */
function finalState<T extends RefreshResult["files"][number]>(f: T): T {
  if (f.status !== "pending" && f.status !== "stale") return f;
  const message =
    "the file was still incomplete at the end of the job (no final newline or being written); write a temporary file and rename it into place";
  return { ...f, problems: [{ file: f.path, message, incomplete: true }] };
}

/** The URL for logs: a password written into it (`https://user:pass@host`) is not shown. */
function redactedUrl(url: URL): string {
  if (url.password === "") return url.href;
  const copy = new URL(url.href);
  copy.password = "redacted";
  return copy.href;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
