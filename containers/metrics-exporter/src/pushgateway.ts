/**
 * The `prometheus-push/` output: PUT the merged files to a Pushgateway group with undici.
 *
 * prom-client's push client URL-encodes grouping values, which the Pushgateway splits on `/`
 * and cannot express when empty; values are sent with the `@base64` suffix instead (RFC 4648
 * URL-safe alphabet, `=` for an empty value), as the Pushgateway README describes.
 */
import { EventEmitter } from "node:events";
import { loadUndici } from "@buildpod/runtime";
import type { Dispatcher } from "undici";

/** Where and how to push. */
export interface PushTarget {
  /** Base URL of the Pushgateway, e.g. `http://pushgateway.monitoring:9091`. */
  url: string;
  job: string;
  /** Grouping labels in URL order (label name, value). */
  grouping: readonly (readonly [string, string])[];
  basicAuth?: { username: string; password: string };
  /** PEM CA bundle to trust for https (in addition to nothing: only this CA). */
  ca?: string;
  /** Per-request timeout in milliseconds (connect, headers and body). */
  timeoutMs: number;
}

/** The outcome of one request. */
export type Attempt =
  | { ok: true; status: number }
  | { ok: false; final: boolean; status?: number; reason: string };

const PLAIN_SEGMENT = /^[A-Za-z0-9._~-]+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One path segment pair: plain when safe, `name@base64/value` otherwise. */
function segment(name: string, value: string): string {
  if (PLAIN_SEGMENT.test(value)) return `${name}/${value}`;
  const encoded = Buffer.from(value, "utf8").toString("base64url");
  return `${name}@base64/${encoded === "" ? "=" : encoded}`;
}

/** The group's path: `/metrics/job/<job>{/<label>/<value>}`. Throws on an invalid label name. */
export function groupPath(job: string, grouping: PushTarget["grouping"]): string {
  if (job === "") throw new Error("could not build the push URL: the job name is empty");
  let path = `/metrics/${segment("job", job)}`;
  for (const [name, value] of grouping) {
    if (!LABEL_NAME.test(name) || name.startsWith("__") || name === "job") {
      throw new Error(
        `could not build the push URL: "${name}" is not a usable grouping label name; use [a-zA-Z_][a-zA-Z0-9_]* (not job, not __*)`,
      );
    }
    path += `/${segment(name, value)}`;
  }
  return path;
}

/** Sends single requests to one Pushgateway group. */
export class PushClient {
  readonly target: PushTarget;
  readonly url: URL;
  /** Made at the first request, when undici is loaded. */
  private dispatcher: Dispatcher | undefined;
  private readonly headers: Record<string, string>;

  constructor(target: PushTarget) {
    this.target = target;
    this.url = new URL(groupPath(target.job, target.grouping), target.url);
    this.headers = {};
    if (target.basicAuth !== undefined) {
      const { username, password } = target.basicAuth;
      this.headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    }
  }

  /** Replaces the group with `body` (text format 0.0.4, no timestamps). */
  put(body: string, signal?: AbortSignal): Promise<Attempt> {
    return this.send("PUT", body, signal);
  }

  /** Deletes the group (the Pushgateway answers 202 and queues the deletion). */
  delete(signal?: AbortSignal): Promise<Attempt> {
    return this.send("DELETE", undefined, signal);
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async send(method: "PUT" | "DELETE", body: string | undefined, signal?: AbortSignal) {
    const timeout = AbortSignal.timeout(this.target.timeoutMs);
    const headers = { ...this.headers };
    if (body !== undefined) headers["content-type"] = "text/plain; version=0.0.4; charset=utf-8";
    try {
      const { Agent, request } = await loadUndici();
      this.dispatcher ??= new Agent({
        connect: { ca: this.target.ca, timeout: this.target.timeoutMs },
        headersTimeout: this.target.timeoutMs,
        bodyTimeout: this.target.timeoutMs,
      });
      const res = await request(this.url, {
        method,
        body,
        headers,
        dispatcher: this.dispatcher,
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
      const text = (await res.body.text()).trim().slice(0, 2000);
      return classify(res.statusCode, text);
    } catch (err) {
      const reason = timeout.aborted
        ? `no answer within ${this.target.timeoutMs} ms`
        : ((err as Error).message ?? String(err));
      return { ok: false, final: false, reason } satisfies Attempt;
    }
  }
}

/** 2xx is done; 5xx, 408 and 429 are worth retrying; any other answer will not change. */
function classify(status: number, text: string): Attempt {
  if (status >= 200 && status < 300) return { ok: true, status };
  const retry = status >= 500 || status === 408 || status === 429;
  return { ok: false, final: !retry, status, reason: text || `HTTP ${status}` };
}

/** Retry delays: exponential from `minMs` to `maxMs`, with full jitter. */
export interface RetryPolicy {
  minMs: number;
  maxMs: number;
}

export interface PusherEvents {
  /** A PUT succeeded. */
  pushed: [info: { bytes: number; duration_ms: number; attempt: number }];
  /** A PUT failed in a way worth retrying; the next attempt follows after `delay_ms`. */
  retry: [info: { attempt: number; reason: string; status?: number; delay_ms: number }];
  /** The Pushgateway refused this body (e.g. 400): not retried until the files change. */
  rejected: [info: { status?: number; reason: string }];
}

/** The result of the drain's final push. */
export interface FlushResult {
  delivered: boolean;
  /** The reason of the last refusal, when the final body was refused. */
  rejected?: string;
}

/**
 * Keeps one group up to date: `update(body)` schedules a PUT after `debounceMs`; bodies that
 * arrive meanwhile replace the pending one, so a burst of file changes makes one push. Only one
 * request is in flight at a time, and retries always send the newest body.
 */
export class Pusher extends EventEmitter<PusherEvents> {
  readonly client: PushClient;
  private readonly debounceMs: number;
  private readonly retry: RetryPolicy;
  private readonly stop = new AbortController();
  private latest: string | undefined;
  /** The body the newest completed attempt was about, and whether it got through. */
  private delivered: string | undefined;
  private lastRejection: { body: string; reason: string } | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** What bounds the loop: `stop`, and from the drain on, the drain's signal too. */
  private signal: AbortSignal;
  /** Ends the running loop's wait or request, so that `flush` can start one bound by its signal. */
  private interrupt = new AbortController();
  private flushing = false;

  constructor(client: PushClient, opts: { debounceMs: number; retry: RetryPolicy }) {
    super();
    this.client = client;
    this.debounceMs = opts.debounceMs;
    this.retry = opts.retry;
    this.signal = this.stop.signal;
  }

  /** Sets the group's next content and schedules a push. */
  update(body: string): void {
    this.latest = body;
    this.dirty = true;
    if (this.timer === undefined && this.running === undefined) {
      this.timer = setTimeout(() => this.kick(), this.debounceMs);
      this.timer.unref();
    }
  }

  /**
   * The drain's final push: sends the latest body now (even if it was pushed before, so that
   * `push_time_seconds` marks the end of the job) and retries until it is delivered, refused,
   * or `signal` aborts.
   */
  async flush(signal: AbortSignal): Promise<FlushResult> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // A loop retrying since before the drain may be waiting for its next attempt: end it, and
    // start one bound by the drain's deadline.
    this.flushing = true;
    this.interrupt.abort();
    while (this.running !== undefined) await this.running;
    this.interrupt = new AbortController();
    if (this.latest === undefined) return { delivered: true };
    this.signal = AbortSignal.any([this.stop.signal, signal]);
    this.dirty = true;
    this.kick();
    while (this.running !== undefined) await this.running;
    const rejected =
      this.lastRejection?.body === this.latest ? this.lastRejection.reason : undefined;
    return { delivered: this.delivered === this.latest, rejected };
  }

  /** Deletes the group, retrying until `signal` aborts. Resolves true when the gateway took it. */
  async remove(signal: AbortSignal): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const result = await this.client.delete(signal);
      if (result.ok) return true;
      if (result.final || signal.aborted) return false;
      if (!(await this.wait(attempt, result, signal))) return false;
    }
  }

  /** Stops pending work and closes the connection pool. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.stop.abort();
    await this.running;
    await this.client.close();
  }

  private kick() {
    this.timer = undefined;
    if (this.running !== undefined) return;
    this.running = this.loop().finally(() => {
      this.running = undefined;
      // An update that landed after the loop's last check must not wait for the next one.
      if (this.dirty && !this.signal.aborted && !this.flushing) this.kick();
    });
  }

  private async loop() {
    const signal = AbortSignal.any([this.signal, this.interrupt.signal]);
    let attempt = 0;
    while (this.dirty && !signal.aborted) {
      this.dirty = false;
      const body = this.latest as string;
      attempt++;
      const started = performance.now();
      const result = await this.client.put(body, signal);
      if (result.ok) {
        this.delivered = body;
        const duration_ms = Math.round(performance.now() - started);
        this.emit("pushed", { bytes: Buffer.byteLength(body), duration_ms, attempt });
        attempt = 0;
        continue;
      }
      if (result.final) {
        this.lastRejection = { body, reason: result.reason };
        this.emit("rejected", { status: result.status, reason: result.reason });
        attempt = 0;
        continue;
      }
      // Retry the newest body, whatever changed while waiting.
      this.dirty = true;
      if (!(await this.wait(attempt, result, signal))) return;
    }
  }

  /** Sleeps before the next attempt; false when `signal` aborted first. */
  private async wait(attempt: number, result: Attempt, signal: AbortSignal): Promise<boolean> {
    const ceiling = Math.min(this.retry.maxMs, this.retry.minMs * 2 ** (attempt - 1));
    const delay_ms = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    // An attempt cut short by the drain (or the stop) is not retried here: no "retrying".
    if (signal.aborted) return false;
    if (!result.ok) {
      this.emit("retry", { attempt, reason: result.reason, status: result.status, delay_ms });
    }
    return new Promise<boolean>((resolve) => {
      // Not unref'd: in the drain this wait may be all that is left, and an empty event loop
      // would end the process before the retry; `signal` (stop or the drain's) clears it.
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, delay_ms);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
