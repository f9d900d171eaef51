/**
 * A strict parser for the Prometheus text exposition format 0.0.4.
 *
 * npm has no parser that rejects what Prometheus, the Pushgateway and node_exporter reject (see
 * the README), so this one checks names, escapes, numbers, TYPE and HELP placement, one group per
 * family, duplicate label names and series, histogram buckets and summary quantiles. A file with
 * any problem is reported whole: callers use a file only when `problems` is empty.
 */

/** The family types of the 0.0.4 format. */
export const METRIC_TYPES = ["counter", "gauge", "histogram", "summary", "untyped"] as const;
export type MetricType = (typeof METRIC_TYPES)[number];

/** One sample line. */
export interface Sample {
  /** The sample name, e.g. `x_bucket` in histogram family `x`. */
  name: string;
  /**
   * The canonical rendering of name and labels (sorted, escaped): the series identity, and
   * the only copy of the labels kept (read them with `labelsOf`), to keep 200,000 series small.
   */
  series: string;
  value: number;
  /** Milliseconds since the epoch, when the line carries a timestamp. */
  timestampMs?: number;
  line: number;
}

/** The samples of one metric family, with its metadata. */
export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  /** The first line that mentions the family (HELP, TYPE or a sample). */
  line: number;
  samples: Sample[];
}

/** A problem found in a file; the file must not be used. */
export interface ParseProblem {
  file: string;
  /** Absent for a problem of the whole file (incomplete at the end of the job). */
  line?: number;
  /** The metric family or sample name the problem is about, when known. */
  metric?: string;
  message: string;
  /** True when the file only lacks its final newline (it may still be being written). */
  incomplete?: boolean;
}

export interface ParseResult {
  families: Family[];
  problems: ParseProblem[];
  /** How many samples carry a timestamp. */
  timestamps: number;
}

/** Stops parsing after this many problems: enough to fix a file, bounded for a garbage file. */
const MAX_PROBLEMS = 20;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY = /^[+-]?(?:inf|infinity)$/i;
const TIMESTAMP = /^-?\d{1,19}$/;

/** Renders a problem as `file:line: metric name: message`. */
export function formatProblem(p: ParseProblem): string {
  const at = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return `${at}: ${p.metric === undefined ? "" : `metric ${p.metric}: `}${p.message}`;
}

/** Parses a number the way Go's ParseFloat accepts it in the text format. */
export function parseFloatStrict(text: string): number | undefined {
  // Go's ParseFloat refuses a decimal beyond the float64 range (ErrRange) rather than give ±Inf.
  if (DECIMAL.test(text)) {
    const value = Number(text);
    return Number.isFinite(value) ? value : undefined;
  }
  if (INFINITY.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return Number.NaN;
  return undefined;
}

/** Escapes a label value for the text format (`\\`, `\"`, `\n`). */
export function escapeLabelValue(v: string): string {
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** The canonical series identity: `name{a="1",b="2"}` with labels sorted by name. */
export function seriesOf(name: string, labels: string[]): string {
  if (labels.length === 0) return name;
  let s = `${name}{`;
  for (let i = 0; i < labels.length; i += 2) {
    if (i > 0) s += ",";
    s += `${labels[i]}="${escapeLabelValue(labels[i + 1] as string)}"`;
  }
  return `${s}}`;
}

class LineError extends Error {}

const TRAILING_BLANKS =
  "the line ends in a space or tab, which the Pushgateway and node_exporter refuse; remove it";

const isBlank = (c: number) => c === 0x20 || c === 0x09;
const EMPTY: string[] = [];

/** Parses a whole file. `file` is only used to name the file in problems. */
export function parseExposition(text: string, file: string): ParseResult {
  return new Parser(text, file).run();
}

class Parser {
  readonly text: string;
  readonly file: string;
  readonly problems: ParseProblem[] = [];
  readonly byName = new Map<string, Family>();
  readonly families: Family[] = [];
  /** Families whose group has ended: seeing them again means the family is split. */
  readonly closed = new Set<string>();
  readonly seriesLines = new Map<string, number>();
  /** Families that had a TYPE line. */
  readonly typed = new Set<string>();
  current: Family | undefined;
  lineNo = 0;
  metric: string | undefined;
  timestamps = 0;

  constructor(text: string, file: string) {
    this.text = text;
    this.file = file;
  }

  run(): ParseResult {
    const { text } = this;
    if (text.charCodeAt(0) === 0xfeff) {
      this.problem(
        1,
        undefined,
        "the file starts with a byte order mark; save it as UTF-8 without BOM",
      );
      return this.result();
    }
    let pos = 0;
    while (pos < text.length && this.problems.length < MAX_PROBLEMS) {
      this.lineNo++;
      let end = text.indexOf("\n", pos);
      if (end === -1) {
        this.problems.push({
          file: this.file,
          line: this.lineNo,
          message: "the last line has no final newline (the file may still be being written)",
          incomplete: true,
        });
        end = text.length;
      }
      this.parseLine(text.slice(pos, end));
      pos = end + 1;
    }
    if (this.problems.length === 0) this.checkFamilies();
    return this.result();
  }

  private result(): ParseResult {
    return { families: this.families, problems: this.problems, timestamps: this.timestamps };
  }

  private problem(line: number, metric: string | undefined, message: string) {
    this.problems.push({ file: this.file, line, metric, message });
  }

  private parseLine(line: string) {
    this.metric = undefined;
    try {
      if (line.endsWith("\r")) {
        this.metric = /^[ \t]*(?:#[ \t]*(?:HELP|TYPE)[ \t]+)?([^\s{]+)/.exec(line)?.[1];
        throw new LineError("the line ends with CR (Windows line ending); write LF line endings");
      }
      let i = 0;
      while (i < line.length && isBlank(line.charCodeAt(i))) i++;
      if (i === line.length) return;
      if (line.charCodeAt(i) === 0x23) this.parseComment(line, i + 1);
      else this.parseSample(line, i);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      this.problem(this.lineNo, this.metric, err.message);
    }
  }

  /** `# HELP name text`, `# TYPE name type`; any other `#` line is a comment. */
  private parseComment(line: string, start: number) {
    const words = line.slice(start).trimStart();
    const keyword = /^(HELP|TYPE)(?:[ \t]|$)/.exec(words)?.[1];
    if (keyword === undefined) return;
    const rest = words.slice(4).replace(/^[ \t]+/, "");
    const nameEnd = rest.search(/[ \t]|$/);
    const name = rest.slice(0, nameEnd);
    if (name === "") throw new LineError(`# ${keyword} needs a metric name`);
    this.metric = name;
    if (!METRIC_NAME.test(name)) throw new LineError(invalidName(name));
    const arg = rest.slice(nameEnd).replace(/^[ \t]+/, "");
    const family = this.enter(name, true);
    if (keyword === "HELP") {
      if (family.help !== undefined) throw new LineError("a second HELP line for this metric");
      family.help = unescapeHelp(arg);
      return;
    }
    const type = arg;
    if (!(METRIC_TYPES as readonly string[]).includes(type)) {
      throw new LineError(
        `unknown type "${type}"; expected one of ${METRIC_TYPES.join(", ")} (format 0.0.4)`,
      );
    }
    if (this.typed.has(name)) throw new LineError("a second TYPE line for this metric");
    if (family.samples.length > 0) {
      throw new LineError(`the TYPE line comes after samples of this metric (line ${family.line})`);
    }
    family.type = type as MetricType;
    this.typed.add(name);
  }

  private parseSample(line: string, start: number) {
    let i = start;
    const c0 = line.charCodeAt(i);
    if (c0 === 0x7b || c0 === 0x22) {
      throw new LineError(
        "quoted metric names need format 1.0 or later; use [a-zA-Z_:][a-zA-Z0-9_:]*",
      );
    }
    while (i < line.length && !isBlank(line.charCodeAt(i)) && line.charCodeAt(i) !== 0x7b) i++;
    const name = line.slice(start, i);
    this.metric = name;
    if (!METRIC_NAME.test(name)) throw new LineError(invalidName(name));
    while (i < line.length && isBlank(line.charCodeAt(i))) i++;

    let labels: string[] = EMPTY;
    // When the labels are written canonically (sorted, no blanks, no trailing comma), the
    // series identity is the text as written: no string needs to be built.
    let series: string | undefined = name;
    if (line.charCodeAt(i) === 0x7b) {
      // Most lines are canonical: checked without building any string, the series is a slice.
      const end = i === start + name.length ? scanCanonicalLabels(line, i + 1) : -1;
      if (end !== -1) {
        series = line.slice(start, end);
        i = end;
      } else {
        const parsed = parseLabels(line, i + 1);
        labels = parsed.labels;
        series = undefined;
        i = parsed.end;
      }
      while (i < line.length && isBlank(line.charCodeAt(i))) i++;
    }

    const valueEnd = tokenEnd(line, i);
    if (valueEnd === i) throw new LineError("the sample has no value");
    const valueText = line.slice(i, valueEnd);
    const value = parseFloatStrict(valueText);
    if (value === undefined) {
      throw new LineError(
        DECIMAL.test(valueText)
          ? `"${valueText}" is beyond the range of a float64; write +Inf or -Inf for infinity`
          : `"${valueText}" is not a number; expected a float, NaN, +Inf or -Inf`,
      );
    }
    let timestampMs: number | undefined;
    i = skipBlanks(line, valueEnd);
    // Go's text parser (Pushgateway, node_exporter, promtool) reads a blank after the value as
    // the start of a timestamp, and refuses any blank after the timestamp.
    if (i === line.length && valueEnd < line.length) throw new LineError(TRAILING_BLANKS);
    if (i < line.length) {
      const tsEnd = tokenEnd(line, i);
      const ts = line.slice(i, tsEnd);
      if (!TIMESTAMP.test(ts)) {
        throw new LineError(`"${ts}" is not a timestamp; expected integer milliseconds`);
      }
      const rest = skipBlanks(line, tsEnd);
      if (rest < line.length) {
        const extra = line.slice(rest, tokenEnd(line, rest));
        throw new LineError(`unexpected text after the value and timestamp: "${extra}"`);
      }
      if (tsEnd < line.length) throw new LineError(TRAILING_BLANKS);
      timestampMs = Number(ts);
      this.timestamps++;
    }

    const family = this.familyForSample(name);
    series ??= seriesOf(name, labels);
    const seen = this.seriesLines.get(series);
    if (seen !== undefined)
      throw new LineError(`the series ${series} already appears on line ${seen}`);
    this.seriesLines.set(series, this.lineNo);
    family.samples.push({
      // The family's own string when equal, rather than one slice of the file per sample.
      name: name === family.name ? family.name : name,
      series,
      value,
      timestampMs,
      line: this.lineNo,
    });
  }

  /** Finds the family a sample name belongs to: its own, or a histogram/summary's suffix. */
  private familyForSample(name: string): Family {
    let family = this.byName.get(name);
    if (family === undefined) {
      const base = suffixBase(name);
      const owner = base === undefined ? undefined : this.byName.get(base.family);
      if (owner !== undefined && base?.types.includes(owner.type)) family = owner;
    }
    if (family?.type === "histogram" && family.name === name) {
      throw new LineError(
        `histogram ${name} has samples named ${name}_bucket, _sum and _count only`,
      );
    }
    return this.enter(family?.name ?? name, false);
  }

  /** Makes `name` the current family, creating it; a family seen before must still be open. */
  private enter(name: string, metadata: boolean): Family {
    let family = this.byName.get(name);
    if (this.current !== undefined && this.current.name !== name) {
      this.closed.add(this.current.name);
    }
    if (family === undefined) {
      family = { name, type: "untyped", line: this.lineNo, samples: [] };
      this.byName.set(name, family);
      this.families.push(family);
    } else if (this.closed.has(name)) {
      const what = metadata ? "metadata" : "samples";
      throw new LineError(
        `${what} for ${name} after other metrics: all lines of a metric (from line ${family.line}) must be together`,
      );
    }
    this.current = family;
    return family;
  }

  /** Histogram bucket and summary quantile rules, checked once the whole file is read. */
  private checkFamilies() {
    for (const family of this.families) {
      if (family.type === "histogram") this.checkHistogram(family);
      else if (family.type === "summary") this.checkSummary(family);
    }
  }

  private checkHistogram(family: Family) {
    const groups = new Map<string, { le: number; count: number; line: number; inf?: number }>();
    const counts = new Map<string, Sample>();
    for (const s of family.samples) {
      const labels = labelsOf(s);
      const le = labelValue(labels, "le");
      const key = seriesOf("", withoutLabel(labels, "le"));
      if (s.name !== `${family.name}_bucket`) {
        if (le !== undefined)
          this.problem(s.line, s.name, `the le label belongs on ${family.name}_bucket only`);
        if (s.name.endsWith("_count")) counts.set(key, s);
        continue;
      }
      if (le === undefined) {
        this.problem(
          s.line,
          s.name,
          'a histogram bucket needs an le label, e.g. le="0.5" or le="+Inf"',
        );
        continue;
      }
      const bound = parseFloatStrict(le);
      if (bound === undefined || Number.isNaN(bound)) {
        this.problem(s.line, s.name, `le="${le}" is not a number`);
        continue;
      }
      const prev = groups.get(key);
      if (prev !== undefined && bound <= prev.le) {
        this.problem(
          s.line,
          s.name,
          `bucket le="${le}" comes after a larger or equal bound (line ${prev.line}); write buckets in increasing le order`,
        );
        continue;
      }
      if (prev !== undefined && s.value < prev.count) {
        this.problem(
          s.line,
          s.name,
          `bucket le="${le}" counts fewer than the bucket before it (line ${prev.line}); buckets are cumulative`,
        );
      }
      groups.set(key, {
        le: bound,
        count: s.value,
        line: s.line,
        inf: bound === Infinity ? s.value : undefined,
      });
    }
    for (const [key, g] of groups) {
      if (g.inf === undefined) {
        this.problem(
          g.line,
          family.name,
          `the histogram series ${family.name}${key} has no le="+Inf" bucket`,
        );
        continue;
      }
      const count = counts.get(key);
      if (
        count !== undefined &&
        count.value !== g.inf &&
        !(Number.isNaN(count.value) && Number.isNaN(g.inf))
      ) {
        this.problem(
          count.line,
          count.name,
          `_count ${count.value} differs from the le="+Inf" bucket ${g.inf} (line ${g.line})`,
        );
      }
    }
  }

  private checkSummary(family: Family) {
    const last = new Map<string, { q: number; line: number }>();
    for (const s of family.samples) {
      const labels = labelsOf(s);
      const q = labelValue(labels, "quantile");
      if (s.name !== family.name) {
        if (q !== undefined)
          this.problem(s.line, s.name, `the quantile label belongs on ${family.name} only`);
        continue;
      }
      const value = q === undefined ? undefined : parseFloatStrict(q);
      if (value === undefined || !(value >= 0 && value <= 1)) {
        this.problem(
          s.line,
          s.name,
          'a summary sample needs a quantile label between 0 and 1, e.g. quantile="0.99"',
        );
        continue;
      }
      const key = seriesOf("", withoutLabel(labels, "quantile"));
      const prev = last.get(key);
      if (prev !== undefined && value <= prev.q) {
        this.problem(
          s.line,
          s.name,
          `quantile="${q}" comes after a larger or equal quantile (line ${prev.line}); write quantiles in increasing order`,
        );
        continue;
      }
      last.set(key, { q: value, line: s.line });
    }
  }
}

/** `x_bucket` -> histogram `x`; `x_sum` / `x_count` -> histogram or summary `x`. */
function suffixBase(name: string): { family: string; types: MetricType[] } | undefined {
  if (name.endsWith("_bucket")) return { family: name.slice(0, -7), types: ["histogram"] };
  if (name.endsWith("_sum")) return { family: name.slice(0, -4), types: ["histogram", "summary"] };
  if (name.endsWith("_count"))
    return { family: name.slice(0, -6), types: ["histogram", "summary"] };
  return undefined;
}

function invalidName(name: string): string {
  return `"${name}" is not a valid metric name; use [a-zA-Z_:][a-zA-Z0-9_:]*`;
}

/** HELP text escapes only `\\` and `\n` in format 0.0.4. */
function unescapeHelp(text: string): string {
  if (!text.includes("\\")) return text;
  return text.replace(/\\(.?)/g, (_m, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new LineError(
      `invalid escape "\\${c}" in HELP text; only \\\\ and \\n are allowed (format 0.0.4)`,
    );
  });
}

/**
 * Parses `a="1",b="2"}` starting after the `{`. Returns the labels sorted by name, the index
 * after `}`, and whether the text was already canonical (sorted, unpadded, nothing to escape
 * differently), in which case it can serve as the series identity as is.
 */
function parseLabels(
  line: string,
  start: number,
): { labels: string[]; end: number; canonical: boolean } {
  const labels: string[] = [];
  let canonical = true;
  let sorted = true;
  let i = start;
  for (;;) {
    const before = i;
    i = skipBlanks(line, i);
    if (i !== before) canonical = false;
    if (line.charCodeAt(i) === 0x7d) {
      if (labels.length > 0) canonical = false; // a trailing comma
      break;
    }
    const nameStart = i;
    while (i < line.length && isLabelChar(line.charCodeAt(i))) i++;
    const name = line.slice(nameStart, i);
    if (!LABEL_NAME.test(name)) {
      const found = line.slice(nameStart, nameStart + 20) || "end of line";
      throw new LineError(`expected a label name [a-zA-Z_][a-zA-Z0-9_]* but found "${found}"`);
    }
    if (name.charCodeAt(0) === 0x5f && name.charCodeAt(1) === 0x5f) {
      throw new LineError(`label name ${name} is reserved (names starting with __)`);
    }
    const eq = skipBlanks(line, i);
    if (line.charCodeAt(eq) !== 0x3d) throw new LineError(`expected = after label name ${name}`);
    const quote = skipBlanks(line, eq + 1);
    if (line.charCodeAt(quote) !== 0x22) {
      throw new LineError(`expected a quoted value for label ${name}`);
    }
    if (eq !== i || quote !== eq + 1) canonical = false;
    const value = readQuoted(line, quote + 1, name);
    if (value.escaped) canonical = false;
    i = value.end;
    for (let k = 0; k < labels.length; k += 2) {
      if (labels[k] === name) throw new LineError(`label ${name} appears twice`);
    }
    if (labels.length > 0 && (labels[labels.length - 2] as string) > name) sorted = false;
    labels.push(name, value.text);
    const sep = skipBlanks(line, i);
    if (sep !== i) canonical = false;
    i = sep;
    const c = line.charCodeAt(i);
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x7d) break;
    throw new LineError(`expected , or } after the value of label ${name}`);
  }
  if (!sorted) return { labels: sortPairs(labels), end: i + 1, canonical: false };
  return { labels, end: i + 1, canonical };
}

/**
 * Checks labels written canonically (`a="1",b="2"}`: names valid, strictly increasing, no
 * blanks, no escapes, no trailing comma) without allocating. Returns the index after `}`, or -1
 * when the text is anything else, which `parseLabels` then parses (and reports, if invalid).
 */
function scanCanonicalLabels(line: string, start: number): number {
  let i = start;
  let prevStart = -1;
  let prevEnd = -1;
  if (line.charCodeAt(i) === 0x7d) return -1;
  for (;;) {
    const nameStart = i;
    const first = line.charCodeAt(i);
    if (!isLabelChar(first) || (first >= 0x30 && first <= 0x39)) return -1;
    while (i < line.length && isLabelChar(line.charCodeAt(i))) i++;
    if (first === 0x5f && line.charCodeAt(nameStart + 1) === 0x5f) return -1;
    if (prevStart !== -1 && compareRanges(line, prevStart, prevEnd, nameStart, i) >= 0) return -1;
    prevStart = nameStart;
    prevEnd = i;
    if (line.charCodeAt(i) !== 0x3d || line.charCodeAt(i + 1) !== 0x22) return -1;
    const close = line.indexOf('"', i + 2);
    if (close === -1) return -1;
    const slash = line.indexOf("\\", i + 2);
    if (slash !== -1 && slash < close) return -1;
    i = close + 1;
    const c = line.charCodeAt(i);
    if (c === 0x7d) return i + 1;
    if (c !== 0x2c || line.charCodeAt(i + 1) === 0x7d) return -1;
    i++;
  }
}

/** Compares two substrings of `s` by UTF-16 code units, like `<` on strings. */
function compareRanges(s: string, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let k = 0; k < n; k++) {
    const d = s.charCodeAt(a0 + k) - s.charCodeAt(b0 + k);
    if (d !== 0) return d;
  }
  return a1 - a0 - (b1 - b0);
}

function sortPairs(labels: string[]): string[] {
  const pairs: [string, string][] = [];
  for (let k = 0; k < labels.length; k += 2)
    pairs.push([labels[k] as string, labels[k + 1] as string]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const out: string[] = [];
  for (const [k, v] of pairs) out.push(k, v);
  return out;
}

const isLabelChar = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;

function skipBlanks(line: string, i: number): number {
  while (i < line.length && isBlank(line.charCodeAt(i))) i++;
  return i;
}

function tokenEnd(line: string, i: number): number {
  while (i < line.length && !isBlank(line.charCodeAt(i))) i++;
  return i;
}

/** Reads a label value after its opening quote; escapes are `\\`, `\"` and `\n`. */
function readQuoted(
  line: string,
  start: number,
  label: string,
): { text: string; end: number; escaped: boolean } {
  const close = line.indexOf('"', start);
  const slash = line.indexOf("\\", start);
  if (close !== -1 && (slash === -1 || slash > close)) {
    return { text: line.slice(start, close), end: close + 1, escaped: false };
  }
  let text = "";
  for (let i = start; i < line.length; i++) {
    const c = line[i];
    if (c === '"') return { text, end: i + 1, escaped: true };
    if (c !== "\\") {
      text += c;
      continue;
    }
    const e = line[++i];
    if (e === "\\" || e === '"') text += e;
    else if (e === "n") text += "\n";
    else {
      throw new LineError(
        `invalid escape "\\${e ?? ""}" in the value of label ${label}; use \\\\, \\" or \\n`,
      );
    }
  }
  throw new LineError(`the value of label ${label} has no closing quote`);
}

/** The labels of a sample, sorted by name, alternating names and values. */
export function labelsOf(s: Pick<Sample, "name" | "series">): string[] {
  if (s.series.length === s.name.length) return [];
  return parseLabels(s.series, s.name.length + 1).labels;
}

/** The value of label `name`, if present. */
export function labelValue(labels: string[], name: string): string | undefined {
  for (let i = 0; i < labels.length; i += 2) if (labels[i] === name) return labels[i + 1];
  return undefined;
}

/** The labels without `name`. */
export function withoutLabel(labels: string[], name: string): string[] {
  for (let i = 0; i < labels.length; i += 2) {
    if (labels[i] === name) return [...labels.slice(0, i), ...labels.slice(i + 2)];
  }
  return labels;
}
