/**
 * The two ways points reach Datadog: DogStatsD datagrams over UDP (hot-shots) to the node's
 * Agent, or the HTTP API v2 series endpoint.
 *
 * DogStatsD over a Unix socket is not offered: hot-shots needs the native `unix-dgram` addon
 * for it, which cannot live in the single-file bundle, and Node.js has no datagram Unix
 * sockets of its own. Use the Agent's UDP port (hostPort or `DD_AGENT_HOST`) or the API.
 */
import { loadUndici } from "@buildpod/runtime";
import { StatsD } from "hot-shots";
import type { Dispatcher } from "undici";
import type { DatadogPoint } from "./datadog.ts";
import { gzip } from "./gzip.ts";

/** What one `send` achieved. */
export interface SendResult {
  /** Points handed over (UDP) or accepted (API). */
  sent: number;
  /** Points refused for good (API 4xx), with the intake's reason. */
  rejected: number;
  rejectReason?: string;
  /** Points not delivered for a reason that may pass (5xx, timeout, connection refused). */
  failed: number;
  failReason?: string;
  /** The failed points, to send again later. */
  retry: DatadogPoint[];
  /** Points left out because they cannot fit (a datagram over the Agent's buffer). */
  oversized: number;
  bytes: number;
  requests: number;
}

/** A destination for Datadog points. */
export interface DatadogSink {
  readonly kind: "dogstatsd" | "api";
  send(points: readonly DatadogPoint[], signal: AbortSignal): Promise<SendResult>;
  close(): Promise<void>;
}

const emptyResult = (): SendResult => ({
  sent: 0,
  rejected: 0,
  failed: 0,
  oversized: 0,
  bytes: 0,
  requests: 0,
  retry: [],
});

/** The Agent's DogStatsD receive buffer; a longer datagram is truncated (dogstatsd_buffer_size). */
export const AGENT_BUFFER_BYTES = 8192;
/** Datagrams are packed up to this size: an Ethernet MTU less IP/UDP headers. */
export const UDP_PAYLOAD_BYTES = 1432;

/** DogStatsD over UDP. Sending cannot be confirmed; socket errors go to `onError`. */
export class DogStatsdSink implements DatadogSink {
  readonly kind = "dogstatsd";
  private readonly client: StatsD;

  constructor(opts: { host: string; port: number; onError: (err: Error) => void }) {
    this.client = new StatsD({
      host: opts.host,
      port: opts.port,
      protocol: "udp",
      maxBufferSize: UDP_PAYLOAD_BYTES,
      bufferFlushInterval: 50,
      cacheDns: true,
      errorHandler: opts.onError,
    });
  }

  async send(points: readonly DatadogPoint[]): Promise<SendResult> {
    const result = emptyResult();
    for (const p of points) {
      // name:value|type|#tags plus |T<seconds>; measured before hot-shots packs it.
      const size =
        Buffer.byteLength(p.metric) + 40 + p.tags.reduce((n, t) => n + Buffer.byteLength(t) + 1, 0);
      if (size > AGENT_BUFFER_BYTES) {
        result.oversized++;
        continue;
      }
      const options = {
        tags: p.tags as string[],
        timestamp: p.timestampMs === undefined ? undefined : Math.floor(p.timestampMs / 1000),
      };
      if (p.kind === "gauge") this.client.gauge(p.metric, p.value, options);
      else this.client.increment(p.metric, p.value, options);
      result.sent++;
      result.bytes += size;
    }
    return result;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.close(() => resolve()));
  }
}

/** Payload limits of POST /api/v2/series (docs.datadoghq.com, submit metrics). */
export const API_MAX_COMPRESSED = 512_000;
export const API_MAX_UNCOMPRESSED = 5_242_880;
/** The Agent's own serializer stops at this many points per payload. */
export const API_MAX_POINTS = 10_000;

/** The HTTP API v2 series endpoint, with gzip bodies kept within the documented limits. */
export class DatadogApiSink implements DatadogSink {
  readonly kind = "api";
  readonly url: URL;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  /** Made at the first request, when undici is loaded. */
  private dispatcher: Dispatcher | undefined;
  private readonly now: () => number;

  constructor(opts: { url: string; apiKey: string; timeoutMs: number; now?: () => number }) {
    this.url = new URL(opts.url);
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs;
    this.now = opts.now ?? Date.now;
  }

  async send(points: readonly DatadogPoint[], signal: AbortSignal): Promise<SendResult> {
    const result = emptyResult();
    const nowMs = this.now();
    const series = points.map((p) => ({ point: p, json: JSON.stringify(seriesOf(p, nowMs)) }));
    for (const batch of batches(series)) {
      await this.post(batch, result, signal);
    }
    return result;
  }

  /** POSTs one batch, halving it while its gzip is over the compressed limit. */
  private async post(batch: Serialized[], result: SendResult, signal: AbortSignal): Promise<void> {
    const json = `{"series":[${batch.map((b) => b.json).join(",")}]}`;
    const body = await gzip(json);
    if (body.length > API_MAX_COMPRESSED && batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      await this.post(batch.slice(0, half), result, signal);
      await this.post(batch.slice(half), result, signal);
      return;
    }
    result.requests++;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      const { Agent, request } = await loadUndici();
      this.dispatcher ??= new Agent({ connect: { timeout: this.timeoutMs } });
      const res = await request(this.url, {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          "content-encoding": "gzip",
          "dd-api-key": this.apiKey,
        },
        dispatcher: this.dispatcher,
        signal: AbortSignal.any([signal, timeout]),
      });
      const text = (await res.body.text()).trim().slice(0, 2000);
      if (res.statusCode >= 200 && res.statusCode < 300) {
        result.sent += batch.length;
        result.bytes += body.length;
      } else if (res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429) {
        result.failed += batch.length;
        result.failReason = `HTTP ${res.statusCode}: ${text}`;
        result.retry.push(...batch.map((b) => b.point));
      } else {
        result.rejected += batch.length;
        result.rejectReason = `HTTP ${res.statusCode}: ${text}`;
      }
    } catch (err) {
      result.failed += batch.length;
      result.retry.push(...batch.map((b) => b.point));
      result.failReason = timeout.aborted
        ? `no answer within ${this.timeoutMs} ms`
        : (err as Error).message;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}

/** The API's accepted window for point timestamps: 1 hour back, 10 minutes ahead. */
const PAST_MS = 3_600_000;
const FUTURE_MS = 600_000;

function seriesOf(p: DatadogPoint, nowMs: number) {
  const ts = p.timestampMs;
  const inWindow = ts !== undefined && ts > nowMs - PAST_MS + 60_000 && ts < nowMs + FUTURE_MS;
  return {
    metric: p.metric,
    // MetricIntakeType: 1 count, 3 gauge.
    type: p.kind === "count" ? 1 : 3,
    points: [{ timestamp: Math.floor((inWindow ? ts : nowMs) / 1000), value: p.value }],
    tags: p.tags,
  };
}

interface Serialized {
  point: DatadogPoint;
  json: string;
}

/** Groups serialized series under the uncompressed size and point limits. */
function* batches(series: readonly Serialized[]): Generator<Serialized[]> {
  let batch: Serialized[] = [];
  let bytes = 16;
  for (const s of series) {
    const size = Buffer.byteLength(s.json) + 1;
    if (
      batch.length > 0 &&
      (bytes + size > API_MAX_UNCOMPRESSED || batch.length >= API_MAX_POINTS)
    ) {
      yield batch;
      batch = [];
      bytes = 16;
    }
    batch.push(s);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}

/** `https://api.<site>/api/v2/series` for a Datadog site such as `datadoghq.eu`. */
export function seriesUrl(site: string): string {
  return `https://api.${site}/api/v2/series`;
}
