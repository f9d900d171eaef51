// A fake Datadog metrics intake: `POST /api/v2/series` as the public API documents it.
//
// It checks what the real intake checks and a client can get wrong: the DD-API-KEY header
// (403), the payload limits (512000 bytes as sent, 5242880 once decompressed: 413), the
// Content-Encoding (gzip, deflate or none), and the series shape (metric, type 0-3, points
// with integer-second timestamps, string tags: 400 with the reason). Accepted payloads answer
// 202 `{"errors":[]}`. `failNext` makes the next requests answer a given status instead.
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync, inflateSync } from "node:zlib";

export const MAX_COMPRESSED_BYTES = 512_000;
export const MAX_DECOMPRESSED_BYTES = 5_242_880;

export interface IntakeSeries {
  metric: string;
  type: number;
  points: { timestamp: number; value: number }[];
  tags?: string[];
  [field: string]: unknown;
}

export interface IntakeRequest {
  status: number;
  apiKey: string | undefined;
  encoding: string | undefined;
  /** Bytes as sent and once decompressed. */
  bytes: number;
  decompressedBytes: number;
  series: number;
}

export interface FakeDatadog {
  /** The series endpoint URL to give the client. */
  url: string;
  /** Every accepted series, in arrival order. */
  series: IntakeSeries[];
  requests: IntakeRequest[];
  /** The next `times` requests answer `status` (and are not stored). */
  failNext(status: number, times?: number): void;
  close(): Promise<void>;
}

export async function startFakeDatadog(opts: { apiKey: string }): Promise<FakeDatadog> {
  const series: IntakeSeries[] = [];
  const requests: IntakeRequest[] = [];
  const failures: number[] = [];

  const server: Server = createServer((req, res) => {
    readBody(req).then((raw) => {
      const answer = handle(req, raw);
      requests.push(answer.record);
      res.writeHead(answer.record.status, { "content-type": "application/json" });
      res.end(JSON.stringify(answer.body));
    });
  });

  function handle(req: IncomingMessage, raw: Buffer) {
    const encoding = req.headers["content-encoding"];
    const apiKey = req.headers["dd-api-key"] as string | undefined;
    const record: IntakeRequest = {
      status: 202,
      apiKey,
      encoding,
      bytes: raw.length,
      decompressedBytes: 0,
      series: 0,
    };
    const fail = (status: number, error: string) => {
      record.status = status;
      return { record, body: { errors: [error] } };
    };
    if (req.method !== "POST" || req.url !== "/api/v2/series") return fail(404, "Not found");
    if (apiKey !== opts.apiKey) return fail(403, "Forbidden");
    const injected = failures.shift();
    if (injected !== undefined) return fail(injected, `injected failure ${injected}`);
    if (raw.length > MAX_COMPRESSED_BYTES) return fail(413, "Payload too large");

    let text: Buffer;
    try {
      text =
        encoding === "gzip" ? gunzipSync(raw) : encoding === "deflate" ? inflateSync(raw) : raw;
    } catch {
      return fail(400, `could not decompress the ${encoding} payload`);
    }
    record.decompressedBytes = text.length;
    if (text.length > MAX_DECOMPRESSED_BYTES) return fail(413, "Payload too large");
    if (!String(req.headers["content-type"]).startsWith("application/json")) {
      return fail(415, "Content-Type must be application/json");
    }
    let body: unknown;
    try {
      body = JSON.parse(text.toString());
    } catch (err) {
      return fail(400, `Malformed JSON: ${(err as Error).message}`);
    }
    const problem = checkPayload(body);
    if (problem !== undefined) return fail(400, problem);
    const accepted = (body as { series: IntakeSeries[] }).series;
    record.series = accepted.length;
    series.push(...accepted);
    return { record, body: { errors: [] } };
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v2/series`,
    series,
    requests,
    failNext(status, times = 1) {
      for (let i = 0; i < times; i++) failures.push(status);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

/** The reason a payload is malformed, or undefined. */
function checkPayload(body: unknown): string | undefined {
  if (
    typeof body !== "object" ||
    body === null ||
    !Array.isArray((body as { series?: unknown }).series)
  ) {
    return 'the payload needs a "series" array';
  }
  for (const [i, s] of (body as { series: unknown[] }).series.entries()) {
    const at = `series[${i}]`;
    if (typeof s !== "object" || s === null) return `${at} is not an object`;
    const { metric, type, points, tags } = s as Record<string, unknown>;
    if (typeof metric !== "string" || metric === "")
      return `${at}.metric must be a non-empty string`;
    if (type !== undefined && ![0, 1, 2, 3].includes(type as number)) {
      return `${at}.type must be 0 (unspecified), 1 (count), 2 (rate) or 3 (gauge)`;
    }
    if (!Array.isArray(points) || points.length === 0)
      return `${at}.points must be a non-empty array`;
    for (const p of points as Record<string, unknown>[]) {
      if (!Number.isInteger(p?.timestamp)) return `${at}.points: timestamp must be integer seconds`;
      if (typeof p?.value !== "number" || !Number.isFinite(p.value)) {
        return `${at}.points: value must be a finite number`;
      }
    }
    if (tags !== undefined && (!Array.isArray(tags) || tags.some((t) => typeof t !== "string"))) {
      return `${at}.tags must be an array of strings`;
    }
  }
  return undefined;
}
