/**
 * Early token verification: one `GET jobs/{id}` before the workload starts, so a bad token fails
 * the init container with a precise message instead of the first artifact upload an hour later.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type AgentApi, AgentApiError } from "./agent-api.ts";

export interface VerifyOptions {
  api: AgentApi;
  jobId: string;
  /** Total time to keep retrying network errors, timeouts, 429 and 5xx. */
  retryForMs: number;
  /** First pause between attempts; doubles up to 5 s. */
  initialBackoffMs?: number;
  signal?: AbortSignal;
  /** Called before each pause with the error that caused it. */
  onRetry?: (err: AgentApiError, attempt: number, delayMs: number) => void;
}

export interface Verified {
  state: string;
  attempts: number;
}

/** Resolves with the job's state once the API accepts the token; throws AgentApiError. */
export async function verifyToken(options: VerifyOptions): Promise<Verified> {
  const deadline = Date.now() + options.retryForMs;
  let delay = options.initialBackoffMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      const state = await options.api.getJobState(options.jobId, options.signal);
      return { state, attempts: attempt };
    } catch (err) {
      if (!(err instanceof AgentApiError) || !err.retryable) throw err;
      const left = deadline - Date.now();
      if (left <= 0) throw givenUp(err, attempt, options.retryForMs);
      const pause = Math.min(delay, left);
      options.onRetry?.(err, attempt, pause);
      await sleep(pause, undefined, { signal: options.signal });
      delay = Math.min(delay * 2, 5000);
    }
  }
}

function givenUp(last: AgentApiError, attempts: number, retryForMs: number): AgentApiError {
  return new AgentApiError(
    last.reason,
    `${last.message} (gave up after ${attempts} attempts in ${Math.round(retryForMs / 1000)}s)`,
    { status: last.status, retryable: false, cause: last },
  );
}
