import { type MarkerContent, watchMarker } from "./marker.ts";
import type { ContainerTermination, PodWatch, PodWatchTarget } from "./pod-watch.ts";
import { type StopSignal, watchSignals } from "./signals.ts";
import type { Finished, Lifecycle, LifecycleLogger } from "./types.ts";

export { type MarkerContent, parseMarker, readMarker, writeMarker } from "./marker.ts";
export {
  type LifecycleConfig,
  lifecycleOptions,
  type ResolvedLifecycleOptions,
  resolveLifecycleOptions,
} from "./options.ts";
export type { ContainerTermination, PodWatchTarget } from "./pod-watch.ts";
export type { Finished, Lifecycle, LifecycleLogger } from "./types.ts";

export interface LifecycleOptions {
  /** The marker file to wait for; no marker watch when absent. */
  doneFile?: string;
  /** How long the drain may last once the workload finished. */
  drainTimeoutMs: number;
  /** Period of the marker file's stat poll, which backs up fs events; default 2 s. */
  pollIntervalMs?: number;
  /**
   * How long a marker without a number is re-read, in case a writer that does not rename is
   * still writing it, before it counts as "finished, exit code unknown"; default 1 s.
   */
  markerSettleMs?: number;
  /** Watch the own pod through the Kubernetes API; no pod watch when absent. */
  kubernetes?: PodWatchTarget;
  /** Handle SIGTERM and SIGINT; default true. */
  signals?: boolean;
  /**
   * Whether the program waits for the workload (a sidecar); default true. An init container or
   * a tool runs before or without a workload, so for it a stop signal means "stop", and its log
   * line says so instead of "workload finished".
   */
  waitsForWorkload?: boolean;
  logger?: LifecycleLogger;
  /**
   * Called on a second stop signal; the program should exit at once (code 130). Without it the
   * handlers are removed and the signal re-raised, so the process dies of it.
   */
  onHardStop?: () => void;
}

/**
 * Starts every configured detection of "the workload finished" (stop signals, the marker
 * file, the pod watch) and resolves `finished` with whichever fires first. Until then it holds
 * the process open; afterwards nothing in it does, and `close()` releases every handle.
 */
export function createLifecycle(opts: LifecycleOptions): Lifecycle & { close(): Promise<void> } {
  return new SidecarLifecycle(opts);
}

const silent: LifecycleLogger = { info() {}, warn() {}, error() {} };

class SidecarLifecycle implements Lifecycle {
  readonly finished: Promise<Finished>;
  readonly #opts: LifecycleOptions;
  readonly #logger: LifecycleLogger;
  readonly #drain = new AbortController();
  readonly #resolve: (finished: Finished) => void;
  #outcome: Finished | undefined;
  #closed = false;
  #drainTimer: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  #marker: { close(): void } | undefined;
  #pod: PodWatch | undefined;
  #podLoading: Promise<void> | undefined;
  #signals: { close(): void } | undefined;

  constructor(opts: LifecycleOptions) {
    validate(opts);
    this.#opts = opts;
    this.#logger = opts.logger ?? silent;
    const { promise, resolve } = Promise.withResolvers<Finished>();
    this.finished = promise;
    this.#resolve = resolve;

    // Waiting for the workload is what a sidecar is for, so this one ref'd timer keeps the
    // process alive until `finished`, even when nothing else (a server, a watcher) does.
    this.#keepAlive = setInterval(() => {}, 2 ** 30);
    if (opts.signals !== false) {
      this.#signals = watchSignals({
        onFirst: (signal) => this.#onFirstSignal(signal),
        onSecond: (signal) => this.#onSecondSignal(signal),
      });
    }
    if (opts.doneFile) this.#watchMarker(opts.doneFile);
    if (opts.kubernetes) this.#watchPod(opts.kubernetes);
  }

  drainSignal(): AbortSignal {
    return this.#drain.signal;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#drainTimer);
    this.#signals?.close();
    await this.#stopDetectors();
  }

  #finish(outcome: Finished): void {
    if (this.#outcome || this.#closed) return;
    this.#outcome = outcome;
    if (this.#opts.waitsForWorkload === false) {
      this.#logger.info({ reason: outcome.reason }, `${outcome.detail}: stopping`);
    } else {
      this.#logger.info(
        {
          reason: outcome.reason,
          exit_code: outcome.exitCode,
          drain_timeout_ms: this.#opts.drainTimeoutMs,
        },
        `workload finished: ${outcome.detail}`,
      );
    }
    const deadline = new DOMException(
      `drain deadline reached ${this.#opts.drainTimeoutMs} ms after the workload finished`,
      "TimeoutError",
    );
    // Not unref'd: until its deadline the drain is the sidecar's work, and it may be waiting on
    // nothing but a retry's back-off, which a library's timer may not keep alive by itself.
    // close() clears it, and the program exits with process.exit, so it never delays an exit.
    this.#drainTimer = setTimeout(() => this.#drain.abort(deadline), this.#opts.drainTimeoutMs);
    this.#stopDetectors().catch((err: unknown) => {
      this.#logger.warn({ err }, "could not stop the pod watch cleanly");
    });
    this.#resolve(outcome);
  }

  /** Stops the marker and pod watches; every call returns the same promise. */
  #stopDetectors(): Promise<void> {
    if (!this.#stopping) {
      clearInterval(this.#keepAlive);
      this.#marker?.close();
      // A pod watch still being loaded is never started (see #watchPod).
      this.#stopping = (this.#podLoading ?? Promise.resolve()).then(() => this.#pod?.close());
    }
    return this.#stopping;
  }

  #onFirstSignal(signal: StopSignal): void {
    if (this.#outcome) {
      this.#logger.info(
        { signal },
        `received ${signal} while draining; a second one stops at once`,
      );
      return;
    }
    this.#finish({ reason: "signal", detail: `received ${signal}` });
  }

  #onSecondSignal(signal: StopSignal): void {
    this.#logger.warn(
      { signal },
      `received a second stop signal (${signal}); stopping at once without draining`,
    );
    this.#drain.abort(new DOMException(`hard stop on a second ${signal}`, "AbortError"));
    if (this.#opts.onHardStop) {
      this.#opts.onHardStop();
      return;
    }
    this.#signals?.close();
    process.kill(process.pid, signal);
  }

  #watchMarker(file: string): void {
    this.#marker = watchMarker({
      file,
      pollIntervalMs: this.#opts.pollIntervalMs ?? 2000,
      settleMs: this.#opts.markerSettleMs,
      logger: this.#logger,
      onFound: (content) => this.#finish(markerOutcome(file, content)),
    });
  }

  #watchPod(target: PodWatchTarget): void {
    // Loaded on demand: the pod watch's HTTP client is a large part of a container's start-up
    // memory, and only sidecars told to watch the pod need it.
    this.#podLoading = import("./pod-watch.ts").then(({ PodWatch }) => {
      if (this.#stopping) return;
      this.#pod = new PodWatch({
        ...target,
        logger: this.#logger,
        onTerminated: (termination) => this.#finish(podOutcome(termination)),
      });
    });
  }
}

function markerOutcome(file: string, content: MarkerContent): Finished {
  const { exitCode } = content;
  const detail =
    exitCode === undefined
      ? `marker file ${file} appeared without an exit code`
      : `marker file ${file} says exit code ${exitCode}`;
  return { reason: "done-file", exitCode, detail };
}

function podOutcome(termination: ContainerTermination): Finished {
  const reason = termination.reason ? `: ${termination.reason},` : ",";
  return {
    reason: "kubernetes",
    exitCode: termination.exitCode,
    detail: `workload container terminated${reason} exit code ${termination.exitCode}`,
  };
}

function validate(opts: LifecycleOptions): void {
  const { drainTimeoutMs, pollIntervalMs } = opts;
  // Node fires a longer timer after 1 ms (TimeoutOverflowWarning), so cap it at ~24.8 days.
  if (!Number.isFinite(drainTimeoutMs) || drainTimeoutMs < 0 || drainTimeoutMs > 2 ** 31 - 1) {
    throw new RangeError(`drainTimeoutMs must be 0 to 2147483647 ms, got ${drainTimeoutMs}`);
  }
  if (pollIntervalMs !== undefined && !(pollIntervalMs > 0)) {
    throw new RangeError(`pollIntervalMs must be more than 0 ms, got ${pollIntervalMs}`);
  }
  if (opts.markerSettleMs !== undefined && !(opts.markerSettleMs >= 0)) {
    throw new RangeError(`markerSettleMs must be 0 ms or more, got ${opts.markerSettleMs}`);
  }
}
