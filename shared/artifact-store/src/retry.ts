import { setTimeout as sleep } from "node:timers/promises";
import { isRetryable } from "./errors.ts";

/** How often and how patiently a request is retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Delay before the second attempt; doubled after each failure up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The agent's own numbers (reference §1: 10 attempts, exponential from 500 ms), with the delay
 * capped at 10 s so that a 30 s outage is ridden out within the attempts (0.5+1+2+4+8+10+10 s).
 */
export const defaultRetry: RetryPolicy = { attempts: 10, baseDelayMs: 500, maxDelayMs: 10_000 };

/** Called before each retry, e.g. to log `attempt` and `err`. */
export type OnRetry = (info: { attempt: number; delayMs: number; err: unknown }) => void;

/**
 * Runs `fn` until it succeeds, throws a non-retryable error, or the attempts run out (then the
 * last error is thrown). A `retryAfterMs` field on the error (from a 429's Retry-After) sets the
 * delay when it is longer. Aborting `signal` stops the waiting at once. `shouldRetry` replaces
 * the default test (`isRetryable`).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: {
    signal?: AbortSignal;
    onRetry?: OnRetry;
    shouldRetry?: (err: unknown) => boolean;
  } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const retryable = (options.shouldRetry ?? isRetryable)(err);
      if (attempt >= policy.attempts || !retryable || options.signal?.aborted) throw err;
      const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const asked = (err as { retryAfterMs?: number }).retryAfterMs ?? 0;
      const delayMs = Math.max(backoff, Math.min(asked, policy.maxDelayMs));
      options.onRetry?.({ attempt, delayMs, err });
      await sleep(delayMs, undefined, { signal: options.signal });
    }
  }
}
