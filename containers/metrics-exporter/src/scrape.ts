/**
 * The `prometheus/` output: merged `*.prom` files rendered once per change and served as is, so
 * a scrape costs a buffer write instead of a parse of every file (node_exporter parses on every
 * scrape).
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  makeSample,
  OPENMETRICS_CONTENT_TYPE,
  type RenderFamily,
  renderHeader,
  renderOpenMetrics,
  renderSamples,
  TEXT_CONTENT_TYPE,
  wantsOpenMetrics,
} from "./exposition.ts";
import { gzip } from "./gzip.ts";
import { CONFLICT_KINDS, type Conflict, type MergedFamily, mergeFiles } from "./merge.ts";
import { type Family, type ParseProblem, seriesOf } from "./parse.ts";
import type { TextFile } from "./textfiles.ts";

/** Names shared with node_exporter's textfile collector, so existing alerts keep working. */
export const MTIME_METRIC = "node_textfile_mtime_seconds";
export const SCRAPE_ERROR_METRIC = "node_textfile_scrape_error";
export const CONFLICTS_METRIC = "metrics_exporter_textfile_conflicts";

/** What an update found wrong; the caller logs it. */
export interface UpdateReport {
  conflicts: Conflict[];
  problems: ParseProblem[];
  series: number;
}

/**
 * A piece of the text body with its gzip member, compressed on first demand. gzip members
 * may be concatenated (RFC 1952, 2.2), so the body of a gzip scrape is the members one after
 * the other, and a change re-compresses only the pieces of the file that changed.
 */
interface Segment {
  raw: Buffer;
  gzipped?: Promise<Buffer>;
}

interface Body {
  contentType: string;
  segments: Segment[];
}

/** The sample lines of each parsed family, rendered once per file version. */
const chunks = new WeakMap<Family, Segment>();
/** Families smaller than this are rendered inline rather than cached as their own piece. */
const MIN_CHUNK_SAMPLES = 64;

function chunkOf(f: Family): Segment {
  let chunk = chunks.get(f);
  if (chunk === undefined) {
    chunk = { raw: Buffer.from(renderSamples(f.samples, true)) };
    chunks.set(f, chunk);
  }
  return chunk;
}

/** The text body as pieces: large families of a file reuse their cached piece. */
function textSegments(families: readonly (RenderFamily | MergedFamily)[]): Segment[] {
  const segments: Segment[] = [];
  let pending = "";
  const flush = () => {
    if (pending !== "") segments.push({ raw: Buffer.from(pending) });
    pending = "";
  };
  for (const f of families) {
    pending += renderHeader(f);
    if (!("exact" in f) || !f.exact) {
      pending += renderSamples(f.samples, true);
      continue;
    }
    for (const source of f.sources) {
      if (source.samples.length < MIN_CHUNK_SAMPLES) {
        pending += renderSamples(source.samples, true);
        continue;
      }
      flush();
      segments.push(chunkOf(source));
    }
  }
  flush();
  return segments;
}

function sameBody(a: Body, b: Body): boolean {
  return Buffer.concat(a.segments.map((s) => s.raw)).equals(
    Buffer.concat(b.segments.map((s) => s.raw)),
  );
}

/** The current exposition of a set of files, re-rendered by `update`. */
export class ScrapeExposition {
  private families: (RenderFamily | MergedFamily)[] = [];
  private text: Body = { contentType: TEXT_CONTENT_TYPE, segments: [] };
  private openMetrics: Body | undefined;
  /** Counts scrapes served, for tests and our own metrics. */
  scrapes = 0;
  /** Bumped by every update; `scrapedVersion` is the version the last scrape served. */
  private version = 0;
  private scrapedVersion = -1;
  private readonly scrapeWaiters = new Set<() => void>();

  constructor() {
    this.update([], []);
  }

  /** Merges the files' families under the conflict rule and renders the text format. */
  update(files: readonly TextFile[], listingWarnings: readonly string[]): UpdateReport {
    const used = files.filter((f) => f.status === "ok" || f.status === "stale");
    const reserved: Conflict[] = [];
    const merged = mergeFiles([
      { file: "(metrics-exporter)", families: ownFamilyStubs() },
      ...used.map((f) => ({ file: f.path, families: withoutReserved(f, reserved) })),
    ]);
    merged.conflicts.unshift(...reserved);
    const problems = files.flatMap((f) => f.problems);
    const broken = problems.length > 0 || listingWarnings.length > 0 || merged.conflicts.length > 0;

    const own = ownFamilies(used, merged.conflicts, broken);
    this.families = merged.families.map((f) => own.get(f.name) ?? withHelp(f));
    const previous = this.text;
    this.text = { contentType: TEXT_CONTENT_TYPE, segments: textSegments(this.families) };
    // Only a change of what a scraper would see needs a new scrape (see waitForScrape).
    if (!sameBody(previous, this.text)) this.version++;
    this.openMetrics = undefined;
    const series = this.families.reduce((n, f) => n + f.samples.length, 0);
    return { conflicts: merged.conflicts, problems, series };
  }

  /** Whether a scrape was served since the last update. */
  scrapedSinceUpdate(): boolean {
    return this.scrapedVersion === this.version;
  }

  /** Resolves true once a scrape serves the current version, false when `signal` aborts first. */
  async waitForScrape(signal: AbortSignal): Promise<boolean> {
    while (!this.scrapedSinceUpdate()) {
      if (signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.scrapeWaiters.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.scrapeWaiters.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
    return true;
  }

  /** The body for an Accept header (OpenMetrics rendered on first demand after a change). */
  body(accept: string | undefined): { contentType: string; raw: Buffer } {
    const body = this.select(accept);
    return { contentType: body.contentType, raw: Buffer.concat(body.segments.map((s) => s.raw)) };
  }

  private select(accept: string | undefined): Body {
    if (!wantsOpenMetrics(accept)) return this.text;
    this.openMetrics ??= {
      contentType: OPENMETRICS_CONTENT_TYPE,
      segments: [{ raw: Buffer.from(renderOpenMetrics(this.families)) }],
    };
    return this.openMetrics;
  }

  /** Handles one HTTP request: GET or HEAD of /metrics. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("not found: metrics are served at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const body = this.select(req.headers.accept);
    let parts = body.segments.map((s) => s.raw);
    const headers: Record<string, string> = { "content-type": body.contentType };
    if (/\bgzip\b/.test(req.headers["accept-encoding"] ?? "")) {
      // Level 1: a large exposition compresses ~5x already, and this runs once per change.
      parts = await Promise.all(
        body.segments.map((s) => {
          s.gzipped ??= gzip(s.raw, { level: 1 });
          return s.gzipped;
        }),
      );
      headers["content-encoding"] = "gzip";
    }
    headers["content-length"] = String(parts.reduce((n, p) => n + p.length, 0));
    this.scrapes++;
    this.scrapedVersion = this.version;
    for (const wake of this.scrapeWaiters) wake();
    res.writeHead(200, headers);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    res.cork();
    for (const p of parts) res.write(p);
    res.uncork();
    res.end();
  }
}

/** A running scrape server. */
export interface ScrapeServer {
  /** `host:port` actually bound (the port is chosen when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

/** Serves an exposition at `http://<host>:<port>/metrics`. */
export async function serveScrapes(
  exposition: ScrapeExposition,
  listen: { host: string; port: number },
): Promise<ScrapeServer> {
  const server: Server = createServer((req, res) => {
    exposition.handle(req, res).catch((err: unknown) => {
      res.writeHead(500).end(`could not serve metrics: ${(err as Error).message}\n`);
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(listen.port, listen.host);
  await once(server, "listening");
  const { address, port } = server.address() as AddressInfo;
  return {
    address: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const RESERVED = new Set([MTIME_METRIC, SCRAPE_ERROR_METRIC, CONFLICTS_METRIC]);

/** Leaves out families named like our own gauges, reporting each as a type conflict. */
function withoutReserved(f: TextFile, conflicts: Conflict[]): readonly Family[] {
  if (!f.families.some((fam) => RESERVED.has(fam.name))) return f.families;
  for (const fam of f.families.filter((x) => RESERVED.has(x.name))) {
    conflicts.push({
      kind: "type",
      metric: fam.name,
      file: f.path,
      line: fam.line,
      firstFile: "(metrics-exporter)",
      firstLine: 0,
      message: "this name is reserved for metrics-exporter's own gauge; the metric is left out",
    });
  }
  return f.families.filter((x) => !RESERVED.has(x.name));
}

/** Placeholders so that user files cannot define our own metrics (they come first). */
function ownFamilyStubs(): Family[] {
  return [MTIME_METRIC, SCRAPE_ERROR_METRIC, CONFLICTS_METRIC].map((name) => ({
    name,
    type: "gauge",
    line: 0,
    samples: [],
  }));
}

function ownFamilies(
  used: readonly TextFile[],
  conflicts: readonly Conflict[],
  broken: boolean,
): Map<string, RenderFamily> {
  const gauge = (name: string, labels: string[], value: number) =>
    makeSample(name, value, seriesOf(name, labels));
  const byKind = (kind: string) => conflicts.filter((c) => c.kind === kind).length;
  return new Map<string, RenderFamily>([
    [
      MTIME_METRIC,
      {
        name: MTIME_METRIC,
        type: "gauge",
        help: "Unix time of the last modification of each textfile in use.",
        samples: used.map((f) => gauge(MTIME_METRIC, ["file", f.path], f.mtimeSeconds)),
      },
    ],
    [
      SCRAPE_ERROR_METRIC,
      {
        name: SCRAPE_ERROR_METRIC,
        type: "gauge",
        help: "1 if a textfile could not be listed, read or parsed or two textfiles conflict.",
        samples: [gauge(SCRAPE_ERROR_METRIC, [], broken ? 1 : 0)],
      },
    ],
    [
      CONFLICTS_METRIC,
      {
        name: CONFLICTS_METRIC,
        type: "gauge",
        help: "Conflicts between textfiles now resolved by the first-file-wins rule, by kind.",
        samples: CONFLICT_KINDS.map((k) => gauge(CONFLICTS_METRIC, ["kind", k], byKind(k))),
      },
    ],
  ]);
}

/** Families without HELP say where they come from (promtool and Prometheus want a HELP). */
function withHelp(f: MergedFamily): RenderFamily {
  if (f.help !== undefined) return f;
  return { ...f, help: `Metric read from ${f.files.join(", ")} by metrics-exporter.` };
}
