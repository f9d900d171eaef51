/**
 * The exit codes every buildpod container uses. Init containers fail the job with anything but
 * 0; a native sidecar's code never changes the pod's phase, so sidecars also write their outcome
 * to a status file (see status.ts).
 */
export const ExitCode = {
  /** All work done and delivered. */
  OK: 0,
  /** The container's task failed: an init container could not do its job. */
  FAILED: 1,
  /** Configuration or usage error; no work was started. */
  CONFIG: 2,
  /** A sidecar reached its drain deadline, or a sink stayed down, with work undelivered. */
  INCOMPLETE: 3,
  /** Everything deliverable was delivered, but some input was rejected as invalid. */
  REJECTED: 4,
  /** An unexpected internal error: a bug worth reporting. */
  INTERNAL: 70,
  /**
   * Stopped by a signal before the work was done: an init or tool command on the first stop
   * signal, a sidecar on the second (it exited at once without draining).
   */
  INTERRUPTED: 130,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

/** The name of a known exit code, for summaries and status files. */
export function exitCodeName(code: number): ExitCodeName | "UNKNOWN" {
  const entry = Object.entries(ExitCode).find(([, value]) => value === code);
  return (entry?.[0] as ExitCodeName | undefined) ?? "UNKNOWN";
}

/** The worse of two outcomes: internal errors first, then failures, then partial delivery. */
export function worstExitCode(...codes: number[]): number {
  const rank = (code: number) =>
    [
      ExitCode.OK,
      ExitCode.REJECTED,
      ExitCode.INCOMPLETE,
      ExitCode.FAILED,
      ExitCode.INTERNAL,
    ].indexOf(code as 0);
  return codes.reduce((worst, code) => (rank(code) > rank(worst) ? code : worst), ExitCode.OK);
}
