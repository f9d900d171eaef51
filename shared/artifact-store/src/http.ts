import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { StoreError } from "./errors.ts";
import { type OnRetry, type RetryPolicy, withRetry } from "./retry.ts";

/** What every HTTP call of the store needs: where, how long, how often. */
export interface HttpSettings {
  /**
   * Bounds each attempt: the whole exchange for API calls, and the wait for headers and for each
   * body chunk (idle time) for storage transfers, whose total length depends on the file size.
   */
  timeoutMs: number;
  retry: RetryPolicy;
  onRetry?: OnRetry;
  userAgent: string;
}

/** A request whose body can be produced again for each attempt (streams are single-use). */
export interface HttpCall {
  method: Dispatcher.HttpMethod;
  url: string;
  headers?: Record<string, string>;
  body?: () => Readable | Buffer | string;
  /** Lowercase "could not <verb> <object>" start of the error message. */
  what: string;
  signal?: AbortSignal;
  /** Bound the whole exchange by timeoutMs (API calls); otherwise only idle time is bounded. */
  totalTimeout?: boolean;
}

/**
 * undici, evaluated at the first request. Evaluating it costs several MiB of RSS (issue 2),
 * which a `dir` store, `--help` or `--print-config` never needs.
 */
let undici: Promise<typeof import("undici")> | undefined;
const loadUndici = () => (undici ??= import("undici"));

/** A pooled keep-alive dispatcher that follows up to 10 redirects (reference §2). */
export async function createDispatcher(connections = 64): Promise<Dispatcher> {
  const { Agent, interceptors } = await loadUndici();
  return new Agent({ connections, keepAliveTimeout: 10_000 }).compose(
    interceptors.redirect({ maxRedirections: 10 }),
  );
}

/**
 * Sends `call`, retrying 429, 5xx, timeouts and connection errors per `settings.retry`, and
 * returns the response once its status is 2xx (3xx are followed by the dispatcher). Other 4xx
 * are final: the error carries the server's own message (a JSON `message`, or an S3 XML one).
 * URLs in errors lose their query string, which may hold a presigned signature.
 */
export function send(
  dispatcher: Dispatcher,
  settings: HttpSettings,
  call: HttpCall,
): Promise<Dispatcher.ResponseData> {
  return withRetry((attempt) => sendOnce(dispatcher, settings, call, attempt), settings.retry, {
    signal: call.signal,
    onRetry: settings.onRetry,
  });
}

async function sendOnce(
  dispatcher: Dispatcher,
  settings: HttpSettings,
  call: HttpCall,
  attempt: number,
): Promise<Dispatcher.ResponseData> {
  const timeout = call.totalTimeout ? AbortSignal.timeout(settings.timeoutMs) : undefined;
  // A composite signal only when there are two: thousands of small transfers pay for each.
  const signal =
    timeout && call.signal ? AbortSignal.any([call.signal, timeout]) : (timeout ?? call.signal);
  const { request } = await loadUndici();
  let res: Dispatcher.ResponseData;
  try {
    res = await request(call.url, {
      dispatcher,
      method: call.method,
      headers: { "user-agent": settings.userAgent, ...call.headers },
      body: call.body?.(),
      signal,
      headersTimeout: settings.timeoutMs,
      bodyTimeout: settings.timeoutMs,
    });
  } catch (err) {
    if (call.signal?.aborted) throw err;
    const why = (err as Error).name === "TimeoutError" ? "timed out" : describe(err);
    throw new StoreError(
      "ARTIFACT_STORE_UNREACHABLE",
      `${call.what}: ${call.method} ${redact(call.url)} failed on attempt ${attempt}: ${why}`,
      { retryable: true, cause: err },
    );
  }
  if (res.statusCode < 400) return res;
  throw await statusError(call, res);
}

async function statusError(call: HttpCall, res: Dispatcher.ResponseData): Promise<StoreError> {
  const text = await res.body.text().catch(() => "");
  const status = res.statusCode;
  const retryable = status === 429 || status >= 500;
  const err = new StoreError(
    retryable ? "ARTIFACT_STORE_UNAVAILABLE" : "ARTIFACT_STORE_REJECTED",
    `${call.what}: ${call.method} ${redact(call.url)} answered ${status}: ${serverMessage(text)}`,
    { retryable, status },
  );
  const retryAfter = Number(res.headers["retry-after"]);
  if (Number.isFinite(retryAfter)) Object.assign(err, { retryAfterMs: retryAfter * 1000 });
  return err;
}

/** The human part of an error body: JSON `message`, S3 XML `<Message>`, or the text itself. */
export function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed?.message === "string") return parsed.message;
  } catch {
    // not JSON
  }
  const xml = /<Message>([^<]*)<\/Message>/.exec(text);
  if (xml?.[1]) return xml[1];
  return text.trim().slice(0, 200) || "(no message)";
}

/** The URL without its query string, where presigned signatures live. */
export function redact(url: string): string {
  const i = url.indexOf("?");
  return i < 0 ? url : `${url.slice(0, i)}?…`;
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return [e.code, e.message].filter(Boolean).join(" ") || String(err);
}
