import { defaultOf, inputKind } from "./kinds.ts";
import { envName, flagName, type OptionSpec, type Options } from "./option.ts";

/** One row of an options table, as both `--help` and the docs pages show it. */
export interface OptionRow {
  flag: string;
  env: string[];
  /** The env vars in `env` that hold a secret itself rather than its file's path. */
  secretEnv: string[];
  fileKey?: string;
  default?: string;
  required: boolean;
  description: string;
}

export function optionRows(options: Options, envPrefix: string): OptionRow[] {
  return Object.entries(options).map(([key, spec]) => {
    const env = envName(key, spec, envPrefix);
    const flag = flagName(key, spec);
    const def = defaultOf(spec.schema);
    return {
      flag: spec.secret ? `--${flag}-file FILE` : `--${flag}${metavar(spec)}`,
      env: [...(env ? [spec.secret ? `${env}_FILE` : env] : []), ...(spec.aliases ?? [])],
      secretEnv: spec.secret ? (spec.aliases ?? []) : [],
      fileKey: spec.flagOnly ? undefined : spec.secret ? `${key}File` : key,
      default: def === undefined ? undefined : JSON.stringify(def),
      required: !spec.schema.safeParse(undefined).success,
      description: spec.description + (spec.repeatable ? " (repeatable)" : ""),
    };
  });
}

function metavar(spec: OptionSpec): string {
  if (spec.metavar) return ` ${spec.metavar}`;
  const kind = inputKind(spec.schema);
  if (kind === "boolean") return "";
  if (kind === "number") return " N";
  return " VALUE";
}

/** An env var as the tables show it; one holding a secret itself (not a file) says so. */
function envLabel(row: OptionRow, name: string, show = (s: string) => s): string {
  return row.secretEnv.includes(name) ? `${show(name)} (the secret itself)` : show(name);
}

/** The flags section of `--help`: flag, then description with env var and default. */
export function renderOptions(options: Options, envPrefix: string): string {
  const rows = optionRows(options, envPrefix);
  const width = Math.min(32, Math.max(...rows.map((r) => r.flag.length)) + 2);
  return rows
    .map((row) => {
      const facts = [
        row.env.length > 0 ? `env ${row.env.map((e) => envLabel(row, e)).join(", ")}` : undefined,
        row.required
          ? "required"
          : row.default !== undefined
            ? `default ${row.default}`
            : undefined,
      ].filter(Boolean);
      const pad =
        row.flag.length + 2 > width
          ? `\n${" ".repeat(width + 2)}`
          : " ".repeat(width - row.flag.length);
      return `  ${row.flag}${pad}${row.description}${facts.length ? `\n${" ".repeat(width + 2)}[${facts.join("; ")}]` : ""}`;
    })
    .join("\n");
}

/** A Markdown table of the options, for the docs pages (generated, never hand-written). */
export function optionsMarkdown(options: Options, envPrefix: string): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const code = (s: string) => `\`${cell(s)}\``;
  const rows = optionRows(options, envPrefix).map((row) => [
    code(row.flag),
    row.env.map((e) => envLabel(row, e, code)).join(", "),
    row.fileKey ? code(row.fileKey) : "",
    row.required ? "required" : row.default !== undefined ? code(row.default) : "",
    cell(row.description),
  ]);
  return alignedTable(["flag", "env", "config key", "default", "description"], rows);
}

/** A Markdown table with padded columns, as Markdown formatters leave them. */
function alignedTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
