import type { z } from "zod";

/**
 * One configurable value of a program: its schema, where it may come from and how `--help`
 * describes it. Keys are camelCase; the flag and env names derive from the key unless given.
 */
export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  /** Validates, coerces and defaults the value, e.g. `z.string().default("/logs")`. */
  schema: S;
  /** One line for `--help` and the generated docs table. */
  description: string;
  /** Canonical env var; default `${envPrefix}_${SCREAMING_SNAKE(key)}`. */
  env?: string;
  /** Further env vars, read in order when the canonical one is unset (e.g. `BUILDKITE_REPO`). */
  aliases?: string[];
  /** Flag name without dashes; default the kebab-case key. */
  flag?: string;
  /**
   * A secret: never given inline on the command line or in a config file, only by file
   * reference (`--<flag>-file`, `<ENV>_FILE`, `<key>File:`) or by one of `aliases`, which is
   * how a Kubernetes `secretKeyRef` or the Buildkite job env hands it over. Never printed.
   */
  secret?: boolean;
  /** The flag may repeat; the env var holds a comma-separated list. The schema is an array. */
  repeatable?: boolean;
  /** What `--help` shows after the flag: URL, DIR, DURATION ... */
  metavar?: string;
  /** Flag only: no env var, no config file key (for `--print-config` and the like). */
  flagOnly?: boolean;
}

/** A program's or command's options, by camelCase key. */
export type Options = Record<string, OptionSpec>;

/** The validated configuration an `Options` record describes. */
export type ConfigOf<O extends Options> = { [K in keyof O]: z.output<O[K]["schema"]> };

/** Declares an option; an identity function that keeps the schema's type for `ConfigOf`. */
export function option<S extends z.ZodType>(spec: OptionSpec<S>): OptionSpec<S> {
  return spec;
}

/** `drainTimeout` → `drain-timeout`. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `drainTimeout` → `DRAIN_TIMEOUT`. */
export function screamingSnake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/** The flag name of an option (without the leading dashes). */
export function flagName(key: string, spec: OptionSpec): string {
  return spec.flag ?? kebabCase(key);
}

/** The canonical env var of an option, or undefined for flag-only options. */
export function envName(key: string, spec: OptionSpec, envPrefix: string): string | undefined {
  if (spec.flagOnly) return undefined;
  return spec.env ?? `${envPrefix}_${screamingSnake(key)}`;
}
