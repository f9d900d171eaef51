import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

/** One end-to-end check of a local run, shown in the summary. */
export interface Check {
  name: string;
  ok: boolean;
  /** What was compared, with numbers. */
  detail: string;
  /** Set when the check did not run (and why); a skipped check is neither passed nor failed. */
  skipped?: string;
}

/** Every regular file below a folder, relative paths with `/`. */
export function filesBelow(root: string): string[] {
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.isFile()) found.push(path.relative(root, full).split(path.sep).join("/"));
    }
  };
  visit(root);
  return found.sort();
}

/** The lines of a file as the exporter reads them: split on `\n`, a last partial line kept. */
function linesOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** The workload's output from the CRI file: `<time> <stream> <P|F> <message>`, P joined. */
function criMessages(file: string): string[] {
  const messages: string[] = [];
  let partial = "";
  for (const line of linesOf(file)) {
    const match =
      /^\S+ (?:stdout|stderr) ([PF])\S* (.*)$/.exec(line) ??
      /^\S+ (?:stdout|stderr) ([PF])\S*$/.exec(line);
    if (!match) continue;
    partial += match[2] ?? "";
    if (match[1] === "F") {
      messages.push(partial);
      partial = "";
    }
  }
  return messages;
}

function count(messages: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  return counts;
}

/**
 * Every line the workload wrote (to its stdout and stderr, and to the files under the logs
 * volume) reached the sink exactly once: the two multisets of messages are equal.
 */
export function checkLogs(
  sources: { criFile?: string; logsDir?: string },
  sinkFile: string,
): Check {
  const name = "every log line reached the sink exactly once";
  const written: string[] = [];
  if (sources.criFile && existsSync(sources.criFile)) written.push(...criMessages(sources.criFile));
  if (sources.logsDir) {
    for (const rel of filesBelow(sources.logsDir))
      written.push(...linesOf(path.join(sources.logsDir, rel)));
  }
  if (!existsSync(sinkFile))
    return { name, ok: false, detail: `the sink file ${sinkFile} does not exist` };
  const received: string[] = [];
  for (const line of linesOf(sinkFile)) {
    const record = JSON.parse(line) as { message?: string };
    received.push(record.message ?? "");
  }
  const want = count(written);
  const got = count(received);
  let missing = 0;
  let duplicated = 0;
  let unexpected = 0;
  for (const [message, n] of want) {
    const m = got.get(message) ?? 0;
    if (m < n) missing += n - m;
    if (m > n) duplicated += m - n;
  }
  for (const [message, m] of got) if (!want.has(message)) unexpected += m;
  const ok = missing === 0 && duplicated === 0 && unexpected === 0 && written.length > 0;
  return {
    name,
    ok,
    detail: `${written.length} written, ${received.length} received, ${missing} missing, ${duplicated} duplicated, ${unexpected} unexpected`,
  };
}

async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Every file under the artifacts volume is in the store, with the same SHA-256. */
export async function checkArtifacts(artifactsDir: string, storeDir: string): Promise<Check> {
  const name = "every artifact arrived with its sha256";
  const files = filesBelow(artifactsDir);
  let matched = 0;
  const problems: string[] = [];
  let bytes = 0;
  for (const rel of files) {
    const stored = path.join(storeDir, rel);
    if (!existsSync(stored)) {
      problems.push(`${rel}: missing`);
      continue;
    }
    const [a, b] = await Promise.all([sha256(path.join(artifactsDir, rel)), sha256(stored)]);
    if (a === b) {
      matched++;
      bytes += statSync(stored).size;
    } else problems.push(`${rel}: sha256 differs`);
  }
  const ok = problems.length === 0 && files.length > 0;
  const detail = `${matched}/${files.length} files (${bytes} bytes) match${problems.length ? `; ${problems.slice(0, 3).join(", ")}` : ""}`;
  return { name, ok, detail };
}

/** The series the run scraped from the metrics endpoint include those the workload wrote. */
export function checkScrape(scraped: string | undefined, expectedNames: string[]): Check {
  const name = "served metrics scraped once by the run";
  if (scraped === undefined)
    return { name, ok: false, detail: "the metrics endpoint did not answer" };
  const series = scraped.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  const missing = expectedNames.filter((n) => !series.some((s) => s.startsWith(n)));
  return {
    name,
    ok: missing.length === 0 && series.length > 0,
    detail: `${series.length} series scraped${missing.length ? `; missing ${missing.join(", ")}` : ""}`,
  };
}

/** Metric names in the `.prom` files under a folder (`# TYPE name kind` lines). */
export function metricNamesBelow(dir: string): string[] {
  const names = new Set<string>();
  for (const rel of filesBelow(dir).filter((f) => f.endsWith(".prom"))) {
    for (const line of linesOf(path.join(dir, rel))) {
      const match = /^# TYPE (\S+) /.exec(line);
      if (match?.[1]) names.add(match[1]);
    }
  }
  return [...names];
}
