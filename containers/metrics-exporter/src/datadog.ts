/**
 * The `datadog/` output's mapping: Prometheus families to Datadog gauges and counts.
 *
 * Names follow Datadog's OpenMetrics check (v2) so that dashboards read the same whichever way
 * the metrics arrive: counter `x_total` -> count `x.count`; gauge/untyped `x` -> gauge `x`;
 * histogram `x` -> counts `x.sum`, `x.count` and `x.bucket` (tag `upper_bound`, `+Inf`
 * skipped); summary `x` -> counts `x.sum`, `x.count` and gauge `x.quantile` (tag `quantile`).
 *
 * Cumulative values (counters, sums, counts, buckets) are sent as the increase since the last
 * delivered value. A job's files start from zero, so the first increase is the whole value;
 * the OpenMetrics check instead drops a first scrape it cannot date, which loses the counters
 * of a short-lived CI pod.
 */
import { type Family, labelsOf, labelValue, withoutLabel } from "./parse.ts";

/** What the mapping needs of a family (parsed or merged). */
export type SourceFamily = Pick<Family, "name" | "type" | "samples">;

/** One Datadog point ready to send. */
export interface DatadogPoint {
  metric: string;
  kind: "gauge" | "count";
  value: number;
  tags: string[];
  /** The sample's own timestamp, when the file gave one. */
  timestampMs?: number;
  /** For an increase of a count: the running total it brings the count to. */
  total?: number;
}

export interface MappingOptions {
  /** Prefix added as `<namespace>.` to every name; empty for none. */
  namespace: string;
  /** Tags added to every point (`key:value`), e.g. the Buildkite job context. */
  tags: readonly string[];
}

export interface Mapped {
  points: DatadogPoint[];
  /** Cumulative points: `value` is the running total, turned into increases by `CountTracker`. */
  cumulative: DatadogPoint[];
  /** Samples left out, with why (NaN/Inf values, names that sanitise to nothing). */
  skipped: { metric: string; reason: string }[];
}

const MAX_NAME = 200;
const MAX_TAG = 200;

/** Datadog metric names: ASCII letters, digits, `_` and `.`, starting with a letter. */
export function datadogName(name: string): string {
  return name
    .replace(/[^A-Za-z0-9_.]/g, "_")
    .replace(/^[^A-Za-z]+/, "")
    .slice(0, MAX_NAME);
}

/**
 * A tag `key:value` safe for DogStatsD and the API: `|`, `,`, `#`, `@` and control characters
 * (which end a field, a tag or a datagram line) become `_`; at most 200 characters.
 */
export function datadogTag(key: string, value: string): string {
  const clean = (s: string) => s.replace(/[|,#@\p{Cc}]/gu, "_");
  return `${clean(key).replace(/:/g, "_")}:${clean(value)}`.slice(0, MAX_TAG);
}

/** Maps merged families to Datadog points. */
export function toDatadog(families: Iterable<SourceFamily>, opts: MappingOptions): Mapped {
  const out: Mapped = { points: [], cumulative: [], skipped: [] };
  const prefix = opts.namespace === "" ? "" : `${datadogName(opts.namespace)}.`;
  for (const f of families) {
    const name = f.type === "counter" ? f.name.replace(/_total$/, "") : f.name;
    const base = prefix + datadogName(name);
    if (base === prefix) {
      out.skipped.push({ metric: f.name, reason: "the name has no letters Datadog accepts" });
      continue;
    }
    for (const s of f.samples) {
      if (!Number.isFinite(s.value)) {
        out.skipped.push({ metric: s.name, reason: `Datadog cannot store the value ${s.value}` });
        continue;
      }
      const point = mapSample(f, base, s.name, labelsOf(s), opts.tags);
      if (point === undefined) continue;
      point.value = s.value;
      point.timestampMs = s.timestampMs;
      (point.kind === "count" ? out.cumulative : out.points).push(point);
    }
  }
  return out;
}

function mapSample(
  f: SourceFamily,
  base: string,
  name: string,
  labels: string[],
  context: readonly string[],
): DatadogPoint | undefined {
  const suffix = name.slice(f.name.length);
  const point = (
    metric: string,
    kind: DatadogPoint["kind"],
    ls: string[],
    extra: string[] = [],
  ) => ({
    metric,
    kind,
    value: 0,
    tags: [...tagsOf(ls), ...extra, ...context],
  });
  switch (f.type) {
    case "counter":
      return point(`${base}.count`, "count", labels);
    case "gauge":
    case "untyped":
      return point(base, "gauge", labels);
    case "histogram": {
      if (suffix !== "_bucket") return point(`${base}.${suffix.slice(1)}`, "count", labels);
      const le = labelValue(labels, "le") as string;
      if (le === "+Inf" || /^\+?inf/i.test(le)) return undefined;
      return point(`${base}.bucket`, "count", withoutLabel(labels, "le"), [
        datadogTag("upper_bound", le),
      ]);
    }
    case "summary": {
      if (suffix !== "") return point(`${base}.${suffix.slice(1)}`, "count", labels);
      const q = labelValue(labels, "quantile") as string;
      return point(`${base}.quantile`, "gauge", withoutLabel(labels, "quantile"), [
        datadogTag("quantile", q),
      ]);
    }
  }
}

/** Labels as tags; empty values are left out (Prometheus treats them as absent). */
function tagsOf(labels: string[]): string[] {
  const tags: string[] = [];
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i + 1] !== "") tags.push(datadogTag(labels[i] as string, labels[i + 1] as string));
  }
  return tags;
}

/**
 * Turns running totals into increases since the last delivered total. `increases` does not
 * remember anything: call `commit` with the increases that were delivered, so that an
 * undelivered increase is sent again, added to the next one.
 */
export class CountTracker {
  private readonly last = new Map<string, number>();

  /** Increases since the last commit; zero increases are left out. A total that went down
   * (the file was reset) counts from zero again. */
  increases(cumulative: readonly DatadogPoint[]): DatadogPoint[] {
    const out: DatadogPoint[] = [];
    for (const p of cumulative) {
      const before = this.last.get(keyOf(p)) ?? 0;
      const delta = p.value >= before ? p.value - before : p.value;
      if (delta !== 0) out.push({ ...p, value: delta, total: p.value });
    }
    return out;
  }

  /** Records increases as delivered (or refused for good): their totals become the base. */
  commit(increases: readonly DatadogPoint[]): void {
    for (const p of increases) this.last.set(keyOf(p), p.total ?? p.value);
  }
}

const keyOf = (p: DatadogPoint) => `${p.metric}|${p.tags.join(",")}`;
