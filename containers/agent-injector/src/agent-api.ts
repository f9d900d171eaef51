/**
 * The one Buildkite agent API call agent-injector makes with the job token: `GET jobs/{id}`,
 * which answers `{"state": ...}`. `inject` uses it to verify the token, `run` to notice that
 * the job was cancelled (the agent's own job runner polls the same route for that reason).
 */
import { loadUndici } from "@buildpod/runtime";
import type { Dispatcher } from "undici";
import { InjectorError } from "./errors.ts";

export interface AgentApiOptions {
  /** Base URL, e.g. `https://agent-edge.buildkite.com/v3` (BUILDKITE_AGENT_ENDPOINT). */
  endpoint: string;
  token: string;
  /** Upper bound for one request, connect to last body byte: a stalled server never hangs us. */
  requestTimeoutMs: number;
  userAgent?: string;
  /**
   * Where the endpoint was set, as the hints name it ("flag --endpoint"); by default the env
   * var BUILDKITE_AGENT_ENDPOINT.
   */
  endpointFrom?: string;
}

/** An API failure; `retryable` is true for network errors, timeouts, 429 and 5xx. */
export class AgentApiError extends InjectorError {
  readonly status: number | undefined;
  readonly retryable: boolean;

  constructor(
    reason: string,
    message: string,
    opts: { status?: number; retryable: boolean; cause?: unknown },
  ) {
    super(reason, withoutUrlPasswords(message), { cause: opts.cause });
    this.name = "AgentApiError";
    this.status = opts.status;
    this.retryable = opts.retryable;
  }
}

/**
 * The messages name the request URL; an endpoint given as `https://user:password@host/v3` must
 * not put its password into a log line or the status file.
 */
function withoutUrlPasswords(text: string): string {
  return text.replace(/(:\/\/[^/@:\s]*):[^/@\s]*@/g, "$1:[redacted]@");
}

/**
 * Escapes a path segment the way the agent does: URL path escaping plus `.` as `%2E`, so an id
 * like `..` can never walk up the URL path.
 */
export function escapePathSegment(segment: string): string {
  return encodeURIComponent(segment).replaceAll(".", "%2E");
}

/** Joins the endpoint and a relative path with exactly one `/`. */
export function apiUrl(endpoint: string, path: string): string {
  return `${endpoint.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

export class AgentApi {
  readonly endpoint: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #endpointFrom: string;
  /** Made at the first request, when undici is loaded. */
  #dispatcher: Dispatcher | undefined;

  constructor(options: AgentApiOptions) {
    this.endpoint = options.endpoint;
    this.#token = options.token;
    this.#timeoutMs = options.requestTimeoutMs;
    this.#userAgent = options.userAgent ?? "buildpod-agent-injector";
    this.#endpointFrom = options.endpointFrom ?? "env BUILDKITE_AGENT_ENDPOINT";
  }

  /** The job's state (`running`, `canceling`, `canceled`, ...); throws AgentApiError. */
  async getJobState(jobId: string, signal?: AbortSignal): Promise<string> {
    const url = apiUrl(this.endpoint, `jobs/${escapePathSegment(jobId)}`);
    const body = await this.#get(url, jobId, signal);
    const state = (body as { state?: unknown } | null)?.state;
    if (typeof state !== "string") {
      throw new AgentApiError(
        "api-bad-response",
        `could not read the job state from ${url}: the answer has no "state" string; check ` +
          `that the endpoint (${this.#endpointFrom}) points at the Buildkite agent API (…/v3)`,
        { retryable: false },
      );
    }
    return state;
  }

  async close(): Promise<void> {
    await this.#dispatcher?.close();
  }

  async #get(url: string, jobId: string, signal?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      const { Agent, request } = await loadUndici();
      const t = this.#timeoutMs;
      this.#dispatcher ??= new Agent({
        connect: { timeout: t },
        headersTimeout: t,
        bodyTimeout: t,
      });
      res = await request(url, {
        method: "GET",
        dispatcher: this.#dispatcher,
        signal: combined,
        headers: {
          authorization: `Token ${this.#token}`,
          accept: "application/json",
          "user-agent": this.#userAgent,
        },
      });
      text = await res.body.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw transportError(url, err, this.#timeoutMs, this.#endpointFrom);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return parseJson(text);
    throw statusError(url, jobId, res.statusCode, serverMessage(text), this.#endpointFrom);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The JSON `message` the API puts in error bodies, shortened; empty when there is none. */
function serverMessage(text: string): string {
  const message = (parseJson(text) as { message?: unknown } | null)?.message;
  return typeof message === "string" ? ` (server says: ${message.slice(0, 200)})` : "";
}

function transportError(
  url: string,
  err: unknown,
  timeoutMs: number,
  endpointFrom: string,
): AgentApiError {
  const e = err as Error & { code?: string };
  const timedOut =
    e.name === "TimeoutError" ||
    e.code === "UND_ERR_HEADERS_TIMEOUT" ||
    e.code === "UND_ERR_BODY_TIMEOUT" ||
    e.code === "UND_ERR_CONNECT_TIMEOUT";
  const why = timedOut ? `no answer within ${timeoutMs}ms` : (e.code ?? e.message);
  return new AgentApiError(
    timedOut ? "api-timeout" : "api-unreachable",
    `could not reach the agent API at ${url}: ${why}; check the endpoint (${endpointFrom}) ` +
      `and that the pod's network policy allows ${schemeOf(url)} to it`,
    { retryable: true, cause: err },
  );
}

/** "HTTP" or "HTTPS", as the URL says: the hint must name the protocol really used. */
function schemeOf(url: string): string {
  return url.startsWith("http:") ? "HTTP" : "HTTPS";
}

function statusError(
  url: string,
  jobId: string,
  status: number,
  said: string,
  endpointFrom: string,
): AgentApiError {
  const base = `GET ${url} answered ${status}${said}`;
  if (status === 401) {
    return new AgentApiError(
      "token-rejected",
      `could not verify the job token: ${base}: the token is not valid; check that the Secret ` +
        `holds the access token of job ${jobId} (not the agent registration token) and that ` +
        "the job has not already finished",
      { status, retryable: false },
    );
  }
  if (status === 403) {
    return new AgentApiError(
      "token-forbidden",
      `could not verify the job token: ${base}: the token may not read job ${jobId}; check ` +
        "that BUILDKITE_JOB_ID and the token belong to the same job",
      { status, retryable: false },
    );
  }
  if (status === 404) {
    return new AgentApiError(
      "job-not-found",
      `could not find job ${jobId}: ${base}; check BUILDKITE_JOB_ID and the endpoint ` +
        `(${endpointFrom})`,
      { status, retryable: false },
    );
  }
  const retryable = status === 429 || status >= 500;
  return new AgentApiError(
    retryable ? "api-unavailable" : "api-error",
    `could not read job ${jobId}: ${base}; ${retryable ? "the API is busy or failing" : `check the endpoint (${endpointFrom})`}`,
    { status, retryable },
  );
}
