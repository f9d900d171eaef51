/**
 * Rendering the job environment as a POSIX shell file that is safe to source.
 *
 * Safety rests on two rules: every value is written inside single quotes (where the shell
 * expands nothing: no `$`, no backticks, no backslash escapes), with each `'` in the value
 * closed, escaped and reopened as `'\''`; and every name must be a shell identifier, because a
 * name is written bare and `export` with anything else is a syntax error or worse.
 */

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether `name` can be assigned by a POSIX shell (`NAME=value`). */
export function isShellName(name: string): boolean {
  return SHELL_NAME.test(name);
}

/** Quotes `value` so that a POSIX shell reads it back byte for byte and runs none of it. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export interface RenderedShellEnv {
  /** The file's text: a header comment and one `export NAME='value'` line per variable. */
  text: string;
  /** Names left out because they are not shell identifiers (they stay in the JSON file). */
  skipped: string[];
}

/** Renders `vars` (in the order given) as a sourceable shell file. */
export function renderShellEnv(vars: Record<string, string>): RenderedShellEnv {
  const lines = [
    "# Buildkite job environment, written by agent-injector. Source it: . ./buildkite.env",
  ];
  const skipped: string[] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!isShellName(name)) {
      skipped.push(name);
      continue;
    }
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  return { text: `${lines.join("\n")}\n`, skipped };
}

/**
 * Picks the job's variables out of `env`: names matching one of `include` (where a trailing `*`
 * matches any rest) and none of `exclude`, sorted by name so the files are reproducible.
 */
export function selectJobEnv(
  env: Record<string, string | undefined>,
  include: readonly string[],
  exclude: readonly string[],
): Record<string, string> {
  const matches = (name: string, patterns: readonly string[]) =>
    patterns.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));
  const selected: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value === undefined || !matches(name, include) || matches(name, exclude)) continue;
    selected[name] = value;
  }
  return selected;
}
