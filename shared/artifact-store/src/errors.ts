/**
 * The one error class of the store layer. `code` is stable and prefixed (`ARTIFACT_STORE_...`)
 * so callers can count and test it; `retryable` says whether trying again later may help
 * (a 429, a 5xx, a dropped connection) or not (a 4xx answer, a refused path).
 */
export class StoreError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /** The HTTP status when the error is an answer from a server. */
  readonly status?: number;

  constructor(
    code: string,
    message: string,
    options: { retryable?: boolean; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "StoreError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.status = options.status;
  }
}

/** True for errors worth another attempt: StoreErrors say so, anything else is a network error. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof StoreError) return err.retryable;
  return !(err instanceof Error && err.name === "AbortError");
}
