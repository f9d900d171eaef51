/**
 * Writes families in the text format 0.0.4 or OpenMetrics 1.0, for scrapes and pushes.
 */
import type { MetricType, Sample } from "./parse.ts";

/** What rendering needs of a family: parsed ones and our own gauges both fit. */
export interface RenderFamily {
  name: string;
  type: MetricType;
  help?: string;
  samples: readonly Sample[];
}

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** Formats a sample value (the shortest text that reads back as the same float). */
export function formatValue(s: Pick<Sample, "value">): string {
  const v = s.value;
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

const escapeHelpText = (h: string) => h.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
const escapeHelpOpenMetrics = (h: string) =>
  h.replace(/[\\\n"]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));

/**
 * Renders text format 0.0.4. `timestamps: false` drops sample timestamps (the Pushgateway
 * rejects them).
 */
export function renderText(
  families: Iterable<RenderFamily>,
  opts: { timestamps?: boolean } = {},
): string {
  const keep = opts.timestamps ?? true;
  const out: string[] = [];
  for (const f of families) {
    out.push(renderHeader(f));
    out.push(renderSamples(f.samples, keep));
  }
  return out.join("");
}

/** The HELP and TYPE lines of a family in the text format. */
export function renderHeader(f: Omit<RenderFamily, "samples">): string {
  const help = f.help === undefined ? "" : `# HELP ${f.name} ${escapeHelpText(f.help)}\n`;
  return `${help}# TYPE ${f.name} ${f.type}\n`;
}

/** Sample lines in the text format. */
export function renderSamples(samples: readonly Sample[], timestamps: boolean): string {
  let out = "";
  for (const s of samples) {
    const ts = timestamps && s.timestampMs !== undefined ? ` ${s.timestampMs}` : "";
    out += `${s.series} ${formatValue(s)}${ts}\n`;
  }
  return out;
}

/**
 * Renders OpenMetrics 1.0: `unknown` for untyped, counters as family `x` with samples `x_total`,
 * timestamps in seconds, and the closing `# EOF`.
 */
export function renderOpenMetrics(families: Iterable<RenderFamily>): string {
  const out: string[] = [];
  for (const f of families) {
    const counter = f.type === "counter";
    const name = counter && f.name.endsWith("_total") ? f.name.slice(0, -6) : f.name;
    const type: string = f.type === "untyped" ? "unknown" : f.type;
    if (f.help !== undefined) out.push(`# HELP ${name} ${escapeHelpOpenMetrics(f.help)}\n`);
    out.push(`# TYPE ${name} ${type}\n`);
    for (const s of f.samples) {
      const series = counter ? `${name}_total${s.series.slice(s.name.length)}` : s.series;
      const ts = s.timestampMs === undefined ? "" : ` ${s.timestampMs / 1000}`;
      out.push(`${series} ${formatValue(s)}${ts}\n`);
    }
  }
  out.push("# EOF\n");
  return out.join("");
}

/** A sample built by us (our own gauges), with its series identity computed. */
export function makeSample(name: string, value: number, series: string): Sample {
  return { name, series, value, line: 0 };
}

/** Picks OpenMetrics when the Accept header prefers it over text/plain (q-values honoured). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  let om = -1;
  let text = -1;
  for (const part of accept.split(",")) {
    const [type = "", ...params] = part.split(";").map((p) => p.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2)) || 0;
    if (type === "application/openmetrics-text") om = Math.max(om, q);
    else if (type === "text/plain" || type === "*/*" || type === "text/*") text = Math.max(text, q);
  }
  return om > 0 && om >= text;
}

export type { MetricType };
