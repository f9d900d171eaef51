/**
 * Noticing that Buildkite cancelled the job: poll `GET jobs/{id}` and stop at `canceling` or
 * `canceled`, the two states on which the agent's own job runner cancels a running job.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentApi } from "./agent-api.ts";

export const CANCEL_STATES: ReadonlySet<string> = new Set(["canceling", "canceled"]);

export interface CancelWatchOptions {
  api: AgentApi;
  jobId: string;
  intervalMs: number;
  /** Stops the watch; the promise then resolves with undefined. */
  signal: AbortSignal;
  /** Each successful poll's state. */
  onState?: (state: string) => void;
  /** A failed poll; polling goes on (the API may come back), `failures` counts them in a row. */
  onError?: (err: unknown, failures: number) => void;
}

/** Resolves with the cancel state once the job is cancelled, or undefined when stopped. */
export async function waitForCancel(options: CancelWatchOptions): Promise<string | undefined> {
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      const state = await options.api.getJobState(options.jobId, options.signal);
      failures = 0;
      options.onState?.(state);
      if (CANCEL_STATES.has(state)) return state;
    } catch (err) {
      if (options.signal.aborted) break;
      options.onError?.(err, ++failures);
    }
    try {
      await sleep(options.intervalMs, undefined, { signal: options.signal, ref: false });
    } catch {
      break;
    }
  }
  return undefined;
}
