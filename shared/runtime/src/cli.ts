import { setTimeout as sleep } from "node:timers/promises";
import {
  ConfigError,
  didYouMean,
  type Loaded,
  loadConfig,
  type Options,
  optionsMarkdown,
  printable,
  renderOptions,
} from "@buildpod/config";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Command, CommonConfig, Outcome, Program } from "./command.ts";
import { commonOptions } from "./common-options.ts";
import { BuildpodError } from "./errors.ts";
import { ExitCode, exitCodeName } from "./exit-codes.ts";
import { type HealthServer, startHealthServer } from "./http.ts";
import {
  createLifecycle,
  type Lifecycle,
  type LifecycleOptions,
  lifecycleOptions,
  resolveLifecycleOptions,
} from "./lifecycle/index.ts";
import { createLogger, type Logger, scrubSecrets } from "./logger.ts";
import { writeStatus } from "./status.ts";

/** The version baked into bundles at build time; `dev` when run from source. */
export const version: string = process.env.BUILDPOD_VERSION ?? "dev";

/** Where a program writes and what it reads; the real process by default, fakes in tests. */
export interface ProgramIo {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Runs a container program: picks the command, answers --help, --version and --print-config,
 * loads and validates the configuration (exit 2 with every problem listed), runs the command
 * with a logger, metrics and lifecycle, then prints one JSON summary line and writes the same
 * record as the status file. Resolves to the exit code; never throws.
 */
export async function runProgram(program: Program, io: ProgramIo): Promise<number> {
  const startedAt = new Date();
  const { name: commandName, command, rest } = pickCommand(program, io.argv);
  const help = rest.includes("--help") || rest.includes("-h");
  if (!command && !help) {
    const names = Object.keys(program.commands);
    const guess = didYouMean(commandName, names);
    const hint = guess ? `did you mean "${guess}"?` : `the commands are ${names.join(", ")}`;
    io.stderr.write(
      `${program.name}: unknown command "${commandName}"; ${hint} (${program.name} --help lists them)\n`,
    );
    return ExitCode.CONFIG;
  }
  if (help || !command) {
    // `<program> <command> --help` shows that command; `<program> --help` shows them all.
    const named = io.argv[0] !== undefined && Object.hasOwn(program.commands, io.argv[0]);
    io.stdout.write(renderHelp(program, command && named ? commandName : undefined));
    return ExitCode.OK;
  }
  if (rest.includes("--help-markdown")) {
    io.stdout.write(renderMarkdownOptions(program));
    return ExitCode.OK;
  }
  if (rest.includes("--version") || rest.includes("-V")) {
    io.stdout.write(`${program.name} ${version}\n`);
    return ExitCode.OK;
  }
  if (program.notBuilt) {
    io.stderr.write(`${program.name}: not built yet: ${program.notBuilt}\n`);
    return ExitCode.FAILED;
  }

  const options = optionsOf(program, command);
  let loaded: Loaded<Options>;
  let lifecycleSettings: LifecycleSettings;
  try {
    loaded = loadConfig(options, {
      argv: rest,
      env: io.env,
      envPrefix: program.envPrefix,
      configFile: configFileOf(rest, io.env, program.envPrefix),
      positionals: command.positionals !== undefined,
    });
    lifecycleSettings = await lifecycleSettingsOf(command, loaded, io.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`${program.name}: ${err.message}\n`);
    const logger = createLogger({ component: program.name, destination: logStream(command, io) });
    // The status file still goes where the flags or env put it, though other values are wrong.
    const lifecycleDir =
      flagValue(rest, "lifecycle-dir") ?? io.env.BUILDPOD_LIFECYCLE_DIR ?? "/buildpod";
    const container =
      flagValue(rest, "container-name") ?? (io.env.BUILDPOD_CONTAINER_NAME || program.name);
    const summary = { problems: err.problems.length, error: err.message };
    await finish(container, commandName, logger, lifecycleDir, startedAt, ExitCode.CONFIG, summary);
    return ExitCode.CONFIG;
  }
  const common = loaded.config as unknown as CommonConfig;
  if (common.printConfig) {
    for (const warning of loaded.warnings)
      io.stderr.write(`${program.name}: warning: ${warning}\n`);
    let shown: Record<string, unknown>;
    try {
      shown = {
        ...printable(options, loaded),
        ...(await command.effective?.(loaded.config as never)),
      };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      io.stderr.write(`${program.name}: ${err.message}\n`);
      return ExitCode.CONFIG;
    }
    io.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
    return ExitCode.OK;
  }

  const logger = createLogger({
    component: program.name,
    level: common.logLevel,
    secrets: loaded.secrets,
    destination: command.stdoutIsOutput?.(loaded.config as never)
      ? io.stderr
      : logStream(command, io),
  });
  for (const warning of loaded.warnings) logger.warn(warning);
  const run = { program, commandName, command, loaded, lifecycleSettings, logger, io, startedAt };
  return runCommand(run);
}

interface Run {
  program: Program;
  commandName: string;
  command: Command;
  loaded: Loaded<Options>;
  lifecycleSettings: LifecycleSettings;
  logger: Logger;
  io: ProgramIo;
  startedAt: Date;
}

async function runCommand(run: Run): Promise<number> {
  const { program, commandName, command, loaded, logger, io, startedAt } = run;
  const config = loaded.config as Record<string, unknown>;
  const common = config as unknown as CommonConfig;
  const metrics = new Registry();
  const stop = new AbortController();
  const hardStop = Promise.withResolvers<number>();
  const lifecycle = createLifecycle({
    ...run.lifecycleSettings,
    waitsForWorkload: command.kind === "sidecar",
    logger,
    // The lifecycle has logged the second signal; the run is not waited for.
    onHardStop: () => hardStop.resolve(ExitCode.INTERRUPTED),
  });
  // The first line every container prints: signal handlers are in place from here on.
  logger.info({ command: commandName, kind: command.kind, version }, "starting");
  // Init and tool commands stop their work on the first signal; sidecars drain instead. The
  // abort reason says why ("received SIGTERM"), for the command's own message.
  if (command.kind !== "sidecar")
    lifecycle.finished.then(
      (finished) => stop.abort(new DOMException(finished.detail, "AbortError")),
      () => {},
    );

  let server: HealthServer | undefined;
  let ready = false;
  let partial: (() => Record<string, unknown>) | undefined;
  let outcome: Outcome;
  try {
    if (common.httpPort > 0) {
      const listen = { host: common.httpHost, port: common.httpPort };
      server = await startHealthServer({
        ...listen,
        registry: metrics,
        beforeFirstScrape: () => registerProcessMetrics(metrics),
        isReady: () => ready,
      }).catch((err: NodeJS.ErrnoException) => {
        throw new BuildpodError(
          "BUILDPOD_HTTP_LISTEN",
          `could not listen on ${listen.host}:${listen.port} for health and metrics: ${err.code ?? err.message}`,
          {
            hint: "choose a free --http-port (BUILDPOD_HTTP_PORT), or 0 for no server",
            cause: err,
          },
        );
      });
      logger.info({ url: server.url }, "serving health and metrics");
    }
    ready = true;
    const running = command.run({
      config,
      sources: loaded.sources,
      common,
      logger,
      env: io.env,
      positionals: loaded.positionals,
      metrics,
      lifecycle,
      signal: stop.signal,
      partialSummary: (get) => {
        partial = get;
      },
    });
    const interrupted = hardStop.promise.then((exitCode) => ({
      exitCode,
      summary: { ...partial?.(), interrupted: true },
    }));
    const overdue =
      command.kind === "sidecar" ? pastDrainDeadline(lifecycle, logger, () => partial?.()) : never;
    const stalled = stalledRun(logger, () => partial?.());
    try {
      outcome = await Promise.race([running, interrupted, overdue, stalled.outcome]);
    } finally {
      stalled.dispose();
    }
  } catch (err) {
    outcome = stop.signal.aborted
      ? outcomeOfInterruption(err, commandName, stop.signal, logger, io)
      : outcomeOfError(err, logger, io);
  }
  await lifecycle.close();
  await server?.close();
  await finish(
    common.containerName ?? program.name,
    commandName,
    logger,
    common.lifecycleDir,
    startedAt,
    outcome.exitCode,
    outcome.summary,
    outcome.exitReason,
  );
  return outcome.exitCode;
}

/**
 * Registers Node's process metrics with the registry a container's health server serves, at
 * its first scrape (see startHealthServer). The event loop delay is sampled every 10 ms from
 * then on, so the first answer waits for a few samples: it would report an empty histogram
 * (a mean of NaN) otherwise. Garbage collections are counted from the first scrape on.
 */
async function registerProcessMetrics(registry: Registry): Promise<void> {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  await sleep(30);
}

// How long past its drain deadline a sidecar's own code may take to report before the runtime
// reports for it. Well inside the gap between the drain deadline and the kubelet's SIGKILL.
const DEADLINE_GRACE_MS = 2_000;

const never = new Promise<Outcome>(() => {});

/**
 * Resolves when the event loop runs dry while the command has not returned: it waits on a
 * promise that nothing (no timer, socket or file operation) will settle. Node would then exit
 * with code 0, printing no summary and writing no status file, so a job would take the
 * container for done. This reports it as the bug it is instead. `dispose` stops the watch.
 */
function stalledRun(logger: Logger, partial: () => Record<string, unknown> | undefined) {
  let onBeforeExit = () => {};
  const outcome = new Promise<Outcome>((resolve) => {
    onBeforeExit = () => {
      const error =
        "internal error: the command stopped with work unfinished and nothing left to wait for; this is a bug, please report it";
      logger.error(error);
      resolve({ exitCode: ExitCode.INTERNAL, summary: { ...partial(), error } });
    };
    process.once("beforeExit", onBeforeExit);
  });
  return { outcome, dispose: () => process.off("beforeExit", onBeforeExit) };
}

/**
 * Resolves when a sidecar's run has not returned `DEADLINE_GRACE_MS` after its drain deadline:
 * a request that ignores its abort signal (a client library waiting out its own timeout) must
 * not keep the sidecar alive, whatever it is. The runtime then reports the drain incomplete,
 * with the summary the run registered so far.
 */
function pastDrainDeadline(
  lifecycle: Lifecycle,
  logger: Logger,
  partial: () => Record<string, unknown> | undefined,
): Promise<Outcome> {
  return lifecycle.finished.then(
    () =>
      new Promise<Outcome>((resolve) => {
        const signal = lifecycle.drainSignal();
        const overdue = () =>
          setTimeout(() => {
            logger.error(
              { grace_ms: DEADLINE_GRACE_MS },
              "the drain did not end by its deadline; reporting it incomplete and exiting",
            );
            const summary = { ...partial?.(), drain_overdue: true };
            resolve({ exitCode: ExitCode.INCOMPLETE, summary });
          }, DEADLINE_GRACE_MS).unref();
        if (signal.aborted) overdue();
        else signal.addEventListener("abort", overdue, { once: true });
      }),
  );
}

/** Containers log to stdout, the container log; tools keep stdout for what they print. */
function logStream(command: Command, io: ProgramIo): NodeJS.WritableStream {
  return command.kind === "tool" ? io.stderr : io.stdout;
}

type LifecycleSettings = Pick<LifecycleOptions, "doneFile" | "drainTimeoutMs" | "kubernetes">;

/** Sidecars watch for the workload's end as configured; other commands only for signals. */
async function lifecycleSettingsOf(
  command: Command,
  loaded: Loaded<Options>,
  env: ProgramIo["env"],
): Promise<LifecycleSettings> {
  const config = loaded.config as Record<string, unknown> & CommonConfig;
  if (command.kind !== "sidecar") return { drainTimeoutMs: 10_000 };
  return resolveLifecycleOptions(config as never, {
    lifecycleDir: config.lifecycleDir,
    env: { ...env },
  });
}

/**
 * An init or tool command that a stop signal aborted: the error it threw is the abort seen
 * from wherever it was waiting (a request, a timer), not a bug. It ends as one explained line
 * and exit 130, unless the command explained the stop itself with a BuildpodError.
 */
function outcomeOfInterruption(
  err: unknown,
  commandName: string,
  signal: AbortSignal,
  logger: Logger,
  io: ProgramIo,
): Outcome {
  if (err instanceof BuildpodError || err instanceof ConfigError) {
    return outcomeOfError(err, logger, io);
  }
  const why = (signal.reason as Error | undefined)?.message ?? "a stop signal";
  const error = `could not finish ${commandName}: interrupted (${why}) before its work was done`;
  logger.error({ code: "BUILDPOD_INTERRUPTED" }, error);
  logger.debug({ err }, "the error the interruption surfaced as");
  return {
    exitCode: ExitCode.INTERRUPTED,
    summary: { interrupted: true, error, code: "BUILDPOD_INTERRUPTED" },
  };
}

function outcomeOfError(err: unknown, logger: Logger, io: ProgramIo): Outcome {
  if (err instanceof ConfigError) {
    // A file the command read (a description, a sinks file) was invalid: readable on stderr
    // like any configuration error, and in the log.
    io.stderr.write(`${err.message}\n`);
    logger.error({ problems: err.problems.length }, err.message);
    return { exitCode: ExitCode.CONFIG, summary: { error: err.message } };
  }
  if (err instanceof BuildpodError) {
    // A failure the program expected and explained (bad input, a server that refused): one
    // line that says what failed and what to do, without a stack trace. The cause is shown
    // only when the message does not already carry it.
    const text =
      err.hint && !err.message.includes(err.hint) ? `${err.message}; ${err.hint}` : err.message;
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    const fields = cause && !text.includes(cause) ? { code: err.code, cause } : { code: err.code };
    logger.error(fields, text);
    logger.debug({ err }, "the failure in full");
    return { exitCode: err.exitCode, summary: { error: text, code: err.code } };
  }
  logger.error({ err }, "internal error: this is a bug, please report it with this line");
  return {
    exitCode: ExitCode.INTERNAL,
    summary: { error: String((err as Error)?.message ?? err) },
  };
}

async function finish(
  container: string,
  command: string,
  logger: Logger,
  lifecycleDir: string,
  startedAt: Date,
  exitCode: number,
  summary: Record<string, unknown>,
  exitReason: string = exitCodeName(exitCode),
): Promise<void> {
  const finishedAt = new Date();
  const record = {
    container,
    command,
    version,
    exit_code: exitCode,
    exit_reason: exitReason,
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    duration_ms: finishedAt.getTime() - startedAt.getTime(),
    summary,
  };
  try {
    const path = await writeStatus(lifecycleDir, record, (text) => scrubSecrets(logger, text));
    if (path) logger.debug({ path }, "wrote status file");
    // Outside a pod (a standalone run) there is often no lifecycle directory: nothing to say.
    else
      logger.debug(
        { path: lifecycleDir },
        "no status file: the lifecycle directory does not exist",
      );
  } catch (err) {
    logger.warn({ err, path: lifecycleDir }, "could not write the status file");
  }
  const { container: _, ...fields } = record;
  logger.info(fields, "summary");
}

function pickCommand(program: Program, argv: readonly string[]) {
  const first = argv[0];
  if (first !== undefined && Object.hasOwn(program.commands, first)) {
    return { name: first, command: program.commands[first], rest: argv.slice(1) };
  }
  const name = program.defaultCommand ?? Object.keys(program.commands)[0] ?? "";
  const isWord =
    first !== undefined && !first.startsWith("-") && Object.keys(program.commands).length > 1;
  // For programs with several commands a first word must name one, even with a default
  // command: `repo-mirror snyc` must not quietly run a checkout. Single-command programs take
  // it as a positional.
  if (isWord) return { name: first, command: undefined, rest: argv };
  return { name, command: program.commands[name], rest: argv };
}

/** The value of `--name VALUE` or `--name=VALUE` (the last one), read before validation. */
function flagValue(argv: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "--") break;
    if (word === `--${name}`) value = argv[i + 1];
    else if (word.startsWith(`--${name}=`)) value = word.slice(name.length + 3);
  }
  return value;
}

function optionsOf(program: Program, command: Command): Options {
  return {
    ...command.options,
    ...(command.kind === "sidecar" ? lifecycleOptions : {}),
    ...commonOptions(program.envPrefix),
  };
}

function configFileOf(argv: readonly string[], env: ProgramIo["env"], envPrefix: string) {
  // The last --config wins, as for every other flag.
  return flagValue(argv, "config") ?? (env[`${envPrefix}_CONFIG`] || undefined);
}

/** `--help` for the program, or for one command with its flags. */
export function renderHelp(program: Program, commandName?: string): string {
  const names = Object.keys(program.commands);
  const lines = [`${program.name} ${version}: ${program.description}`, ""];
  if (program.notBuilt) lines.push(`NOT BUILT YET: ${program.notBuilt}`, "");
  const usage = names.length > 1 ? `${program.name} <command> [flags]` : `${program.name} [flags]`;
  lines.push(`Usage: ${usage}`, "");
  if (names.length > 1) {
    lines.push("Commands:");
    for (const name of names) {
      const mark = name === program.defaultCommand ? " (default)" : "";
      lines.push(`  ${name.padEnd(12)}${program.commands[name]?.description}${mark}`);
    }
    lines.push("");
  }
  const shown = commandName ? [commandName] : names;
  for (const name of shown) {
    const command = program.commands[name] as Command;
    if (command.positionals) {
      const prefix = names.length > 1 ? `${program.name} ${name}` : program.name;
      lines.push(`Usage: ${prefix} [flags] ${command.positionals}`, "");
    }
    lines.push(`Flags of ${names.length > 1 ? `"${name}"` : program.name} (${command.kind}):`);
    lines.push(renderOptions(command.options, program.envPrefix), "");
    if (command.kind === "sidecar") {
      lines.push("Lifecycle flags (when the workload finished, how long to drain):");
      lines.push(renderOptions(lifecycleOptions, program.envPrefix), "");
    }
  }
  lines.push(
    "Common flags:",
    renderOptions(commonOptions(program.envPrefix), program.envPrefix),
    "",
  );
  lines.push("  --help, -h    this text          --version, -V    the version", "");
  lines.push("Precedence: flags > env > config file > defaults. Secrets are read from files only.");
  lines.push("Exit codes: 0 ok, 1 failed, 2 config error, 3 incomplete, 4 input rejected,");
  lines.push("70 internal error, 130 interrupted (init and tools: by a stop signal; sidecars: by");
  lines.push("a second one).");
  return `${lines.join("\n")}\n`;
}

/**
 * The options tables of every command as Markdown, for the docs pages: `scripts/docs.ts` runs
 * each program with `--help-markdown` and writes the result into its README, so the tables are
 * generated from the schema and never drift from it.
 */
export function renderMarkdownOptions(program: Program): string {
  const sections: string[] = [];
  const names = Object.keys(program.commands);
  for (const name of names) {
    const command = program.commands[name] as Command;
    const title =
      names.length > 1
        ? `\`${program.name} ${name}\` (${command.kind})`
        : `${program.name} (${command.kind})`;
    sections.push(
      `#### ${title}\n\n${command.description}\n\n${optionsMarkdown(command.options, program.envPrefix)}`,
    );
  }
  if (names.some((name) => program.commands[name]?.kind === "sidecar")) {
    sections.push(
      `#### Lifecycle options (sidecars)\n\n${optionsMarkdown(lifecycleOptions, program.envPrefix)}`,
    );
  }
  sections.push(
    `#### Common options\n\n${optionsMarkdown(commonOptions(program.envPrefix), program.envPrefix)}`,
  );
  return `${sections.join("\n\n")}\n`;
}

/** The entry point of a container: runs the program on the real process and exits. */
export function main(program: Program): void {
  const io: ProgramIo = {
    argv: process.argv.slice(2),
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
  };
  runProgram(program, io).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${program.name}: internal error: ${(err as Error)?.stack ?? err}\n`);
      process.exit(ExitCode.INTERNAL);
    },
  );
}
