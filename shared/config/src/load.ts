import { readFileSync } from "node:fs";
import { type ParsedFile, parseFile, problemsFromIssues } from "./document.ts";
import { elementOf, inputKind } from "./kinds.ts";
import { type ConfigOf, envName, flagName, type OptionSpec, type Options } from "./option.ts";
import { ConfigError, type Problem, type Source, shorten, unknownKeyHint } from "./problems.ts";

/** What `loadConfig` reads; everything is passed in so tests need no process state. */
export interface LoadInput {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Prefix of the canonical env vars, e.g. `LOG_EXPORTER`. */
  envPrefix: string;
  /** A YAML or JSON file of option keys (typically a mounted ConfigMap). */
  configFile?: string;
  /**
   * Whether words besides flags are allowed (`repo-mirror sync URL...`). When not, each is a
   * problem: a path given without its flag must not be dropped silently.
   */
  positionals?: boolean;
}

/** A validated configuration with the origin of every value. */
export interface Loaded<O extends Options> {
  config: ConfigOf<O>;
  sources: Record<string, Source>;
  /** Command-line words that are not flags, in order. */
  positionals: string[];
  /** The secret values read, so that the logger can scrub them from every line. */
  secrets: string[];
  /** Things worth a warning that do not stop the program (e.g. unknown prefixed env vars). */
  warnings: string[];
}

interface Raw {
  value: unknown;
  source: Source;
  /** A secret's file path, to be read once the winning source is known. */
  secretFile?: string;
}

/**
 * Loads a configuration from flags, env vars and a config file, in that order of precedence,
 * over the schema defaults. Every problem found is collected and thrown as one ConfigError.
 */
export function loadConfig<O extends Options>(options: O, input: LoadInput): Loaded<O> {
  const problems: Problem[] = [];
  const fromFlags = readFlags(options, input.argv, problems);
  if (!input.positionals) {
    for (const word of fromFlags.positionals) {
      problems.push({
        key: word,
        expected: "a flag; this command takes no other arguments",
        hint: "write options as --name VALUE (see --help)",
      });
    }
  }
  const file = input.configFile ? parseFile(input.configFile) : undefined;
  const fromFile = file ? readFile(options, file, problems) : new Map<string, Raw>();
  const fromEnv = readEnv(options, input.env, input.envPrefix);

  const config: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  const secrets: string[] = [];
  for (const [key, spec] of Object.entries(options)) {
    const raw = fromFlags.values.get(key) ?? fromEnv.get(key) ?? fromFile.get(key);
    let value = raw?.value;
    if (raw?.secretFile !== undefined) value = readSecret(key, raw, problems);
    if (spec.secret && typeof value === "string" && value !== "") secrets.push(value);
    if (raw && typeof value === "string" && raw.source.kind !== "file" && !spec.secret) {
      value = fromText(value, spec);
    }
    const result = spec.schema.safeParse(value);
    if (result.success) {
      // A URL's password is a secret wherever it is given (`https://user:pw@host/repo.git`).
      secrets.push(...urlPasswords(result.data));
      config[key] = result.data;
      sources[key] = raw?.source ?? { kind: "default", name: "default" };
      continue;
    }
    const sourceOf = () => raw?.source;
    const shown = spec.secret ? undefined : value;
    const found = problemsFromIssues(
      result.error.issues,
      spec.schema,
      undefined,
      [key],
      shown,
      sourceOf,
    );
    for (const problem of found) {
      if (problem.source?.kind === "file" && file) problem.source.line = file.lineOf([key]);
      if (value === undefined) {
        problem.expected = `a value (required): set ${describeWays(key, spec, input.envPrefix)}`;
        problem.received = undefined;
      }
      if (spec.secret) problem.received = undefined;
    }
    problems.push(...found);
  }
  if (problems.length > 0) {
    throw new ConfigError(problems, unknownEnv(options, input.env, input.envPrefix));
  }
  return {
    config: config as ConfigOf<O>,
    sources,
    positionals: fromFlags.positionals,
    secrets,
    warnings: unknownEnv(options, input.env, input.envPrefix),
  };
}

function describeWays(key: string, spec: OptionSpec, envPrefix: string): string {
  const env = envName(key, spec, envPrefix);
  const flag = `--${flagName(key, spec)}${spec.secret ? "-file" : ""}`;
  const ways = [flag];
  if (env) ways.push(spec.secret ? `${env}_FILE` : env);
  ways.push(...(spec.aliases ?? []));
  return ways.join(" or ");
}

/** Converts flag and env text to what the schema expects: numbers, booleans, lists, maps. */
function fromText(text: string, spec: OptionSpec): unknown {
  switch (inputKind(spec.schema)) {
    case "number":
      return text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
    case "boolean":
      return parseBoolean(text) ?? text;
    case "array": {
      const element = elementOf(spec.schema);
      const items = text.trim().startsWith("[") ? tryJson(text) : splitList(text);
      if (!Array.isArray(items) || !element) return items;
      const elementSpec = { ...spec, schema: element };
      return items.map((item) => (typeof item === "string" ? fromText(item, elementSpec) : item));
    }
    case "object":
      return text.trim().startsWith("{") ? tryJson(text) : parsePairs(text);
    default:
      return text;
  }
}

function parseBoolean(text: string): boolean | undefined {
  const lower = text.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(lower)) return true;
  if (["false", "0", "no", "off"].includes(lower)) return false;
  return undefined;
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `team=ci,tier=2` → `{ team: "ci", tier: "2" }`; anything else is left for zod to reject. */
function parsePairs(text: string): unknown {
  const entries = splitList(text).map((pair) => pair.split("="));
  if (entries.some((e) => e.length < 2 || e[0] === "")) return text;
  return Object.fromEntries(entries.map(([k, ...v]) => [k?.trim(), v.join("=").trim()]));
}

interface FlagResult {
  values: Map<string, Raw>;
  positionals: string[];
}

function readFlags(options: Options, argv: readonly string[], problems: Problem[]): FlagResult {
  const byFlag = new Map<string, { key: string; spec: OptionSpec; secretFile: boolean }>();
  for (const [key, spec] of Object.entries(options)) {
    const name = flagName(key, spec);
    byFlag.set(spec.secret ? `${name}-file` : name, { key, spec, secretFile: !!spec.secret });
  }
  const values = new Map<string, Raw>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (/^-[^-]/.test(word)) {
      // Only `--name` flags exist: `-x` is a typo, not an argument.
      problems.push({
        key: word,
        source: { kind: "flag", name: word },
        expected: "a known flag (flags are written --name)",
        hint: unknownKeyHint(
          `--${word.slice(1).split("=")[0]}`,
          [...byFlag.keys()].map((f) => `--${f}`),
        ),
      });
      continue;
    }
    if (!word.startsWith("--")) {
      positionals.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    let name = eq === -1 ? word.slice(2) : word.slice(2, eq);
    let inline: string | undefined = eq === -1 ? undefined : word.slice(eq + 1);
    let entry = byFlag.get(name);
    const negated = name.startsWith("no-") ? byFlag.get(name.slice(3)) : undefined;
    if (!entry && negated && inputKind(negated.spec.schema) === "boolean") {
      entry = negated;
      name = name.slice(3);
      inline = inline === undefined ? "false" : String(!parseBoolean(inline));
    }
    if (!entry) {
      problems.push({
        key: word.slice(0, eq === -1 ? undefined : eq),
        source: { kind: "flag", name: word },
        expected: "a known flag",
        hint: unknownKeyHint(
          `--${name}`,
          [...byFlag.keys()].map((f) => `--${f}`),
        ),
      });
      continue;
    }
    const boolean = !entry.secretFile && inputKind(entry.spec.schema) === "boolean";
    let text = inline;
    if (text === undefined) {
      if (boolean) text = "true";
      else if (i + 1 < argv.length) text = argv[++i] as string;
      else {
        problems.push({
          key: entry.key,
          source: { kind: "flag", name: `--${name}` },
          expected: "a value after the flag",
        });
        continue;
      }
    }
    const source: Source = { kind: "flag", name: `--${name}` };
    if (entry.secretFile) {
      values.set(entry.key, { value: undefined, source, secretFile: text });
    } else if (entry.spec.repeatable) {
      const previous = values.get(entry.key);
      const list = Array.isArray(previous?.value) ? (previous.value as unknown[]) : [];
      values.set(entry.key, { value: [...list, text], source });
    } else {
      values.set(entry.key, { value: text, source });
    }
  }
  // Repeated flags arrive as lists of text: convert each item as the env path does.
  for (const [key, raw] of values) {
    const spec = options[key] as OptionSpec;
    if (Array.isArray(raw.value)) {
      const element = elementOf(spec.schema);
      raw.value = raw.value.map((v) =>
        element ? fromText(String(v), { ...spec, schema: element }) : v,
      );
    }
  }
  return { values, positionals };
}

function readEnv(options: Options, env: LoadInput["env"], envPrefix: string): Map<string, Raw> {
  const values = new Map<string, Raw>();
  for (const [key, spec] of Object.entries(options)) {
    const canonical = envName(key, spec, envPrefix);
    if (!canonical) continue;
    const candidates = spec.secret
      ? [`${canonical}_FILE`, ...(spec.aliases ?? []).flatMap((a) => [a, `${a}_FILE`])]
      : [canonical, ...(spec.aliases ?? [])];
    for (const name of candidates) {
      const text = env[name];
      if (text === undefined || text === "") continue;
      const source: Source = { kind: "env", name };
      const isFileRef = spec.secret && name.endsWith("_FILE");
      values.set(
        key,
        isFileRef ? { value: undefined, source, secretFile: text } : { value: text, source },
      );
      break;
    }
  }
  return values;
}

function readFile(options: Options, file: ParsedFile, problems: Problem[]): Map<string, Raw> {
  const values = new Map<string, Raw>();
  if (file.value === null || typeof file.value !== "object" || Array.isArray(file.value)) {
    problems.push({
      key: "config",
      source: { kind: "file", name: file.path, line: 1 },
      expected: "a mapping of option keys to values",
      received: shorten(file.value),
    });
    return values;
  }
  const known = new Set<string>();
  for (const [key, spec] of Object.entries(options)) {
    if (spec.flagOnly) continue;
    known.add(spec.secret ? `${key}File` : key);
  }
  for (const [name, value] of Object.entries(file.value as Record<string, unknown>)) {
    const source: Source = { kind: "file", name: file.path, line: file.lineOf([name]) };
    const secretKey = name.endsWith("File") ? name.slice(0, -4) : undefined;
    if (secretKey && options[secretKey]?.secret) {
      values.set(secretKey, { value: undefined, source, secretFile: String(value) });
    } else if (options[name]?.secret) {
      problems.push({
        key: name,
        source,
        expected: `a file reference, not the secret itself: use "${name}File: /path/to/secret"`,
      });
    } else if (known.has(name)) {
      values.set(name, { value, source });
    } else {
      problems.push({
        key: name,
        source,
        expected: "a known key",
        hint: unknownKeyHint(name, known),
      });
    }
  }
  return values;
}

function looksLikePath(text: string): boolean {
  return /^(\/|\.{1,2}\/|~\/)/.test(text);
}

function readSecret(key: string, raw: Raw, problems: Problem[]): string | undefined {
  const path = raw.secretFile as string;
  try {
    const text = readFileSync(path, "utf8").replace(/\r?\n$/, "");
    if (text === "") {
      problems.push({
        key,
        source: raw.source,
        expected: `a non-empty secret in ${path}`,
        received: "an empty file",
      });
      return undefined;
    }
    return text;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? "unreadable";
    // Someone may have put the secret itself where its file's path belongs: a value that does
    // not look like a path is not echoed.
    const shown = looksLikePath(path)
      ? `at ${path}`
      : "(the value given is not shown: it is no path)";
    problems.push({
      key,
      source: raw.source,
      expected: `a readable secret file ${shown}`,
      received: reason,
    });
    return undefined;
  }
}

/** Env vars that carry the program's prefix but match no option: likely typos. */
function unknownEnv(options: Options, env: LoadInput["env"], envPrefix: string): string[] {
  const known = new Set<string>();
  for (const [key, spec] of Object.entries(options)) {
    const name = envName(key, spec, envPrefix);
    if (name) known.add(name).add(`${name}_FILE`);
  }
  const warnings: string[] = [];
  // Kubernetes sets these for a Service named like the container (`log-exporter`), unasked.
  const serviceLink = new RegExp(
    `^${envPrefix}_(SERVICE_HOST|SERVICE_PORT(_\\w+)?|PORT(_\\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`,
  );
  for (const name of Object.keys(env)) {
    if (name.startsWith(`${envPrefix}_`) && !known.has(name) && !serviceLink.test(name)) {
      warnings.push(`env ${name} matches no option; ${unknownKeyHint(name, known)}`);
    }
  }
  return warnings;
}

/** The configuration with every secret replaced by where it was read from, for printing. */
export function printable<O extends Options>(
  options: O,
  loaded: Loaded<O>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(options)) {
    const value = (loaded.config as Record<string, unknown>)[key];
    if (options[key]?.secret && value !== undefined) {
      const source = loaded.sources[key];
      out[key] = `<secret from ${source?.kind} ${source?.name}>`;
    } else {
      out[key] = withoutUrlPasswords(value);
    }
  }
  return out;
}

// `scheme://user:password@host`: the password part, wherever a URL carries one.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^/@\s:]*):[^/@\s]*@/gi;

/** The passwords of the URLs in a value, as written and percent-decoded. */
function urlPasswords(value: unknown): string[] {
  if (typeof value === "string") {
    return [...value.matchAll(URL_PASSWORD)].flatMap((m) => {
      const password = m[0].slice(m[1]?.length ?? 0).slice(1, -1);
      let decoded = password;
      try {
        decoded = decodeURIComponent(password);
      } catch {
        // not percent-encoded
      }
      return decoded === password ? [password] : [password, decoded];
    });
  }
  if (Array.isArray(value)) return value.flatMap(urlPasswords);
  if (value && typeof value === "object") return Object.values(value).flatMap(urlPasswords);
  return [];
}

/** A value with the passwords of any URLs in it replaced, for printing. */
function withoutUrlPasswords(value: unknown): unknown {
  if (typeof value === "string") return value.replace(URL_PASSWORD, "$1:[redacted]@");
  if (Array.isArray(value)) return value.map(withoutUrlPasswords);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutUrlPasswords(v)]));
  }
  return value;
}
