import type { ConfigOf, Options, Source } from "@buildpod/config";
import type { Registry } from "prom-client";
import type { Lifecycle } from "./lifecycle/index.ts";
import type { Logger } from "./logger.ts";

/**
 * How a command runs in the pod: `init` containers run once before the workload, `sidecar`s
 * beside it until it finishes (they get the lifecycle options), `tool`s on demand.
 */
export type CommandKind = "init" | "sidecar" | "tool";

/** The values of the options every command accepts. */
export interface CommonConfig {
  config?: string;
  printConfig: boolean;
  logLevel: string;
  lifecycleDir: string;
  containerName?: string;
  httpPort: number;
  httpHost: string;
}

/** Everything a command's `run` is handed. */
export interface RunContext<C> {
  config: C;
  /** Where each option's value came from (flag, env var, file and line, default), by key. */
  sources: Readonly<Record<string, Source>>;
  common: CommonConfig;
  logger: Logger;
  env: Readonly<Record<string, string | undefined>>;
  /** Command-line words that are not flags (e.g. the URLs of `repo-mirror sync`). */
  positionals: string[];
  /** The container's own metrics, served on `/metrics` with the process metrics. */
  metrics: Registry;
  /** When the workload finished and when the drain must end (sidecars; init: stop signals). */
  lifecycle: Lifecycle;
  /** Aborted when the command must stop: a stop signal for init and tool commands. */
  signal: AbortSignal;
  /**
   * Registers what the summary would say at this moment (counts so far). When a sidecar's run
   * has not returned shortly after its drain deadline (a client library that ignores its abort
   * signal), the runtime reports for it, with this summary rather than none.
   */
  partialSummary(get: () => Record<string, unknown>): void;
}

/** What a command reports: its exit code and the summary printed and written at exit. */
export interface Outcome {
  exitCode: number;
  summary: Record<string, unknown>;
  /**
   * The status file's `exit_reason` when `exitCode` is not one of ours but passed through
   * from a program the command ran (agent-injector's agent): its 3 is not INCOMPLETE.
   * Default: the name of our exit code.
   */
  exitReason?: string;
}

export interface Command<O extends Options = Options> {
  description: string;
  kind: CommandKind;
  options: O;
  /**
   * The words the command takes besides flags, as `--help` shows them (`URL...`). A command
   * without it refuses any such word: a flag written `-x` or a path given without its flag
   * must not be dropped silently.
   */
  positionals?: string;
  run(ctx: RunContext<ConfigOf<O>>): Promise<Outcome>;
  /**
   * The values the command derives when an option is left to its default (the store or sink it
   * would use), merged into `--print-config`'s output so that it shows the effective choice.
   * Never secrets. A ConfigError it throws is reported like any configuration error.
   */
  effective?(config: ConfigOf<O> & CommonConfig): Promise<Record<string, unknown>>;
  /**
   * Whether this run writes its own output to stdout (the log-exporter's `stdout` sink): its
   * log lines and summary then go to stderr, so that stdout carries that output alone.
   */
  stdoutIsOutput?(config: ConfigOf<O> & CommonConfig): boolean;
}

/** Declares a command; an identity function that types `run`'s config from the options. */
export function defineCommand<O extends Options>(command: Command<O>): Command<O> {
  return command;
}

/** A container program: its commands and the prefix of its env vars. */
export interface Program {
  /** The container's name, e.g. `repo-mirror`; also the status file's name. */
  name: string;
  /** One sentence for `--help`. */
  description: string;
  /** Prefix of the program's own env vars, e.g. `REPO_MIRROR`. */
  envPrefix: string;
  // biome-ignore lint/suspicious/noExplicitAny: commands differ in their options
  commands: Record<string, Command<any>>;
  /** The command run when the first word is not a command name. */
  defaultCommand?: string;
  /** Set while the container is not implemented: `--help` says so and running exits 1. */
  notBuilt?: string;
}
