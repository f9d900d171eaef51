/** Where a value came from, so an error can point at the exact place to fix. */
export interface Source {
  kind: "flag" | "env" | "file" | "default";
  /** `--repo`, `BUILDKITE_REPO`, or the file path. */
  name: string;
  /** 1-based line in the file, for `kind: "file"`. */
  line?: number;
}

/** One thing wrong with the configuration. */
export interface Problem {
  /** The option key, or a dotted path into a document. */
  key: string;
  source?: Source;
  /** What a valid value looks like. */
  expected: string;
  /** What was given, already shortened; absent for secrets and missing values. */
  received?: string;
  /** What to do about it, e.g. a "did you mean" suggestion. */
  hint?: string;
}

export function describeSource(source: Source): string {
  switch (source.kind) {
    case "flag":
      return `flag ${source.name}`;
    case "env":
      return `env ${source.name}`;
    case "file":
      return source.line ? `${source.name} line ${source.line}` : source.name;
    case "default":
      return "default";
  }
}

export function formatProblem(problem: Problem): string {
  const where = problem.source ? ` (${describeSource(problem.source)})` : "";
  const got = problem.received === undefined ? "" : `, got ${problem.received}`;
  const hint = problem.hint ? `; ${problem.hint}` : "";
  return `${problem.key}${where}: expected ${problem.expected}${got}${hint}`;
}

/**
 * Every problem found while loading a configuration, reported together so that one run shows
 * the user all there is to fix. Programs exit with code 2 on it before any work starts.
 */
export class ConfigError extends Error {
  readonly problems: Problem[];
  /** Warnings that may explain the problems (a mistyped env var behind a missing value). */
  readonly notes: string[];

  constructor(problems: Problem[], notes: readonly string[] = []) {
    const noun = problems.length === 1 ? "problem" : "problems";
    const lines = problems.map((p) => `  - ${formatProblem(p)}`);
    for (const note of notes) lines.push(`  note: ${note}`);
    super(`invalid configuration, ${problems.length} ${noun}:\n${lines.join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
    this.notes = [...notes];
  }
}

/** Shows a value in an error without flooding it: quoted, one line, at most 80 characters. */
export function shorten(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? "");
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The closest candidate within a third of the word's length in edits, if any. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.ceil(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

export function unknownKeyHint(word: string, candidates: Iterable<string>): string {
  const guess = didYouMean(word, candidates);
  return guess ? `did you mean "${guess}"?` : "remove it, or see --help for the valid keys";
}
