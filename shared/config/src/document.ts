import { readFileSync } from "node:fs";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { z } from "zod";
import { shapeAt } from "./kinds.ts";
import { ConfigError, didYouMean, type Problem, type Source, shorten } from "./problems.ts";

/** A parsed YAML or JSON file that can tell the line of any value in it. */
export interface ParsedFile {
  path: string;
  value: unknown;
  lineOf(path: readonly PropertyKey[]): number | undefined;
}

/**
 * The option that named a document (`--sinks` given as a flag, an env var or a config key), so
 * that a file that cannot be read is reported under that option, where the user wrote its path.
 */
export interface DocumentOrigin {
  /** The option's key, e.g. `sinks`. */
  key: string;
  /** Where the option's value came from. */
  source?: Source;
  /** What the file is, e.g. "the cluster sinks file". */
  what?: string;
}

/**
 * Reads a YAML (or JSON, a subset of it) file; an unreadable file and syntax errors become a
 * ConfigError, the former under `origin` when given.
 */
export function parseFile(path: string, origin?: DocumentOrigin): ParsedFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError([
      origin
        ? {
            key: origin.key,
            source: origin.source,
            expected: `an existing, readable file${origin.what ? ` (${origin.what})` : ""}`,
            received: `${JSON.stringify(path)} (${reason})`,
            hint: "check the path, and that the file is mounted",
          }
        : {
            key: "config",
            source: { kind: "file", name: path },
            expected: "a readable file",
            received: reason,
          },
    ]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        key: "config",
        source: { kind: "file", name: path, line: lineCounter.linePos(e.pos[0]).line },
        expected: "valid YAML or JSON",
        received: e.message.split("\n")[0],
      })),
    );
  }
  const lineOf = (at: readonly PropertyKey[]): number | undefined => {
    let node: unknown = doc.contents;
    let line: number | undefined =
      node && (node as Node).range
        ? lineCounter.linePos((node as Node).range?.[0] ?? 0).line
        : undefined;
    for (const step of at) {
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isScalar(p.key) && String(p.key.value) === String(step),
        );
        if (!pair) break;
        const keyNode = pair.key as Node;
        if (keyNode.range) line = lineCounter.linePos(keyNode.range[0]).line;
        node = pair.value;
      } else if (isSeq(node) && typeof step === "number") {
        node = node.items[step];
        const range = (node as Node | undefined)?.range;
        if (range) line = lineCounter.linePos(range[0]).line;
      } else break;
    }
    return line;
  };
  return { path, value: doc.toJS() ?? {}, lineOf };
}

/** Turns zod's issues into problems that name the file and line of each value. */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
  file: ParsedFile | undefined,
  keyPrefix: readonly PropertyKey[],
  input: unknown,
  sourceFor: (path: readonly PropertyKey[]) => Problem["source"],
): Problem[] {
  const problems: Problem[] = [];
  for (const issue of issues) {
    const path = [...keyPrefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const at = [...path, key];
        problems.push({
          key: at.join("."),
          source: file ? { kind: "file", name: file.path, line: file.lineOf(at) } : sourceFor(at),
          expected: "a known key",
          received: shorten(key),
          hint: documentKeyHint(key, shapeAt(schema, issue.path, input)),
        });
      }
      continue;
    }
    const value = issue.path.reduce<unknown>(
      (v, k) => (v && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined),
      input,
    );
    problems.push({
      key: path.join(".") || "(document)",
      source: file ? { kind: "file", name: file.path, line: file.lineOf(path) } : sourceFor(path),
      expected: expectedFrom(issue),
      received: value === undefined ? "nothing" : shorten(value),
    });
  }
  return problems;
}

/** What the value should have been, in words, from one zod issue. */
function expectedFrom(issue: z.core.$ZodIssue): string {
  // A message the schema's author wrote ("KEY=VALUE", "a path; or pass --x") beats a generated
  // one; zod's own start with "Invalid" or "Too".
  if (issue.code !== "custom" && !/^(Invalid|Too (small|big))\b/.test(issue.message)) {
    return issue.message;
  }
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "int" ? "a whole number" : `a value of type ${issue.expected}`;
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_format":
      return formatExpected(issue);
    case "too_small":
      return boundExpected(issue.origin, issue.minimum, issue.inclusive, "at least", "more than");
    case "too_big":
      return boundExpected(issue.origin, issue.maximum, issue.inclusive, "at most", "less than");
    case "invalid_union":
      return unionExpected(issue);
    default:
      // A schema's own message (refine, custom) already says what was wanted.
      return issue.message.replace(/^Invalid input: expected /, "");
  }
}

function unionExpected(issue: z.core.$ZodIssueInvalidUnion): string {
  // A discriminated union (`type: elasticsearch | fluentd | ...`) lists its tags.
  const tags = (issue as { options?: unknown[] }).options;
  if (tags && tags.length > 0) return `one of ${tags.map((t) => JSON.stringify(t)).join(", ")}`;
  // A plain union: what each of its members wanted.
  const wanted = issue.errors.map((errors) => (errors[0] ? expectedFrom(errors[0]) : undefined));
  const known = [...new Set(wanted.filter((w): w is string => w !== undefined))];
  return known.length > 0 ? known.join(", or ") : "a value of another shape";
}

function formatExpected(issue: z.core.$ZodIssueInvalidStringFormat): string {
  switch (issue.format) {
    case "url":
      return "a URL with a scheme and a host, such as https://host:port";
    case "starts_with":
      return `text starting with ${JSON.stringify((issue as { prefix?: string }).prefix)}`;
    case "ends_with":
      return `text ending with ${JSON.stringify((issue as { suffix?: string }).suffix)}`;
    case "includes":
      return `text containing ${JSON.stringify((issue as { includes?: string }).includes)}`;
    case "regex":
      return `text matching ${issue.pattern}`;
    default:
      return `a valid ${issue.format}`;
  }
}

function boundExpected(
  origin: string,
  limit: number | bigint,
  inclusive: boolean | undefined,
  atLimit: string,
  pastLimit: string,
): string {
  const n = Number(limit);
  const bound = `${inclusive === false ? pastLimit : atLimit} ${n}`;
  switch (origin) {
    case "string":
      return n === 1 && atLimit === "at least" ? "a non-empty value" : `${bound} characters`;
    case "array":
    case "set":
      return `${bound} ${n === 1 ? "item" : "items"}`;
    case "file":
      return `${bound} bytes`;
    default:
      return `a number ${bound}`;
  }
}

/**
 * Loads a whole YAML/JSON document (a cluster ConfigMap, a sinks file) and validates it. Every
 * problem names the file and line; unknown keys (use `z.strictObject`) get a "did you mean".
 */
export function loadDocument<S extends z.ZodType>(
  path: string,
  schema: S,
  origin?: DocumentOrigin,
): z.output<S> {
  return loadDocumentFile(path, schema, origin).data;
}

/**
 * `loadDocument`, also returning the parsed file, so that checks made after validation (a
 * credential file that must exist) can name the line of the value they refuse.
 */
export function loadDocumentFile<S extends z.ZodType>(
  path: string,
  schema: S,
  origin?: DocumentOrigin,
): { data: z.output<S>; file: ParsedFile } {
  const file = parseFile(path, origin);
  const result = schema.safeParse(file.value);
  if (result.success) return { data: result.data, file };
  throw new ConfigError(
    problemsFromIssues(result.error.issues, schema, file, [], file.value, () => undefined),
  );
}

/**
 * "Did you mean" for a mistyped key of a document, else the keys it could have been: `--help`
 * describes the options, not the documents they name, so it cannot be the place to look.
 */
function documentKeyHint(key: string, keys: string[]): string {
  const guess = didYouMean(key, keys);
  if (guess) return `did you mean "${guess}"?`;
  return keys.length > 0 ? `remove it; the keys here are ${keys.join(", ")}` : "remove it";
}
