// Textfile fixtures shared by the tests and the benchmark.
import { mkdtemp, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Family, labelsOf, parseExposition } from "@buildpod/metrics-exporter";

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `metrics-exporter-${prefix}-`));
}

/** Writes a file the way the README asks: a temporary name, then rename into place. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** A set of well-formed files exercising every type, escapes and cross-file merging. */
export const GOOD_FILES: Record<string, string> = {
  "a.prom": [
    "# HELP build_duration_seconds How long each build step took, with a \\\\ backslash.",
    "# TYPE build_duration_seconds gauge",
    'build_duration_seconds{step="compile"} 12.5',
    'build_duration_seconds{step="test"} 48',
    "# HELP tests_total Tests run.",
    "# TYPE tests_total counter",
    'tests_total{result="passed"} 1520',
    'tests_total{result="failed"} 3',
    "# HELP request_seconds Request latency.",
    "# TYPE request_seconds histogram",
    'request_seconds_bucket{le="0.1"} 10',
    'request_seconds_bucket{le="1"} 15',
    'request_seconds_bucket{le="+Inf"} 16',
    "request_seconds_sum 7.25",
    "request_seconds_count 16",
    "# HELP rpc_seconds RPC latency quantiles.",
    "# TYPE rpc_seconds summary",
    'rpc_seconds{quantile="0.5"} 0.05',
    'rpc_seconds{quantile="0.99"} 0.8',
    "rpc_seconds_sum 12",
    "rpc_seconds_count 100",
    "",
  ].join("\n"),
  "b.prom": [
    "# HELP build_duration_seconds How long each build step took, with a \\\\ backslash.",
    "# TYPE build_duration_seconds gauge",
    'build_duration_seconds{step="lint"} 3',
    "# HELP last_message_info The last message seen.",
    "# TYPE last_message_info gauge",
    'last_message_info{text="line one\\nsaid \\"hi\\""} 1',
    "# HELP cache_hit_ratio Cache hit ratio.",
    "# TYPE cache_hit_ratio gauge",
    "cache_hit_ratio 0.93",
    "",
  ].join("\n"),
};

/** A file both we and node_exporter reject whole. */
export const BROKEN_FILE = "# TYPE broken_metric gauge\nbroken_metric not-a-number\n";

/** `n` series spread over `files` files of gauges with four labels, ~78 bytes per series. */
export function bigFiles(series: number, files: number): Map<string, string> {
  const out = new Map<string, string>();
  const per = Math.ceil(series / files);
  for (let f = 0; f < files; f++) {
    const name = `job_metric_${String(f).padStart(2, "0")}`;
    const lines = [`# HELP ${name} Generated for the benchmark.`, `# TYPE ${name} gauge`];
    for (let i = 0; i < per && f * per + i < series; i++) {
      lines.push(
        `${name}{idx="${i}",instance="host-${i % 1000}",job="ci-benchmark",shard="${Math.floor(i / 1000)}"} ${i * 0.5}`,
      );
    }
    out.set(`file${String(f).padStart(2, "0")}.prom`, `${lines.join("\n")}\n`);
  }
  return out;
}

/** Parses an exposition (ours or node_exporter's) into `series -> value`, for comparisons. */
export function seriesValues(text: string, keep: (family: Family) => boolean): Map<string, number> {
  const parsed = parseExposition(text, "scrape");
  if (parsed.problems.length > 0) {
    throw new Error(`could not parse a scrape: ${JSON.stringify(parsed.problems.slice(0, 3))}`);
  }
  const out = new Map<string, number>();
  for (const f of parsed.families) {
    if (!keep(f)) continue;
    for (const s of f.samples) {
      // node_exporter pads missing labels with "": an empty label is the same as none.
      const labels: string[] = [];
      const all = labelsOf(s);
      for (let i = 0; i < all.length; i += 2) {
        if (all[i + 1] !== "") labels.push(`${all[i]}=${JSON.stringify(all[i + 1])}`);
      }
      out.set(`${s.name}{${labels.join(",")}}`, s.value);
    }
  }
  return out;
}
