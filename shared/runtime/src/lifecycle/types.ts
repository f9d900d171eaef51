/**
 * What a sidecar learns from its lifecycle: when the workload finished and when its drain must
 * end. `@buildpod/runtime` re-exports these types.
 */
export interface Lifecycle {
  /**
   * Resolves once, when the workload has ended: a stop signal arrived, the marker file
   * appeared, or the pod watch saw the workload container terminate, whichever came first.
   */
  finished: Promise<Finished>;
  /**
   * Aborts `drainTimeoutMs` after `finished` resolved (at once on a hard stop). The same
   * signal on every call; not aborted before `finished`. Bound every drain step by it.
   */
  drainSignal(): AbortSignal;
}

export interface Finished {
  reason: "signal" | "done-file" | "kubernetes";
  /** The workload's exit code when it is known (marker file, pod watch). */
  exitCode?: number;
  /** One line for logs and the summary, e.g. "workload container terminated: OOMKilled, exit code 137". */
  detail: string;
}

/** The subset of a pino logger the lifecycle writes to. */
export interface LifecycleLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}
