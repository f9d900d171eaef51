/**
 * Supervising one child process (buildkite-agent, or in tests any stand-in executable): its
 * stdout/stderr pass through with secrets scrubbed, signals we receive are forwarded to it once
 * each, and its exit status comes back as a shell-style exit code (128+n when killed by signal n).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { constants } from "node:os";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { InjectorError } from "./errors.ts";
import { SecretScrubber } from "./scrub.ts";

export interface SuperviseOptions {
  command: string;
  args: readonly string[];
  env: Record<string, string | undefined>;
  /** Values replaced by [REDACTED] in the child's output. */
  secrets: readonly string[];
  stdout: Writable;
  stderr: Writable;
  cwd?: string;
}

export interface ChildExit {
  /** Shell-style: the exit status, or 128 + the signal number. */
  exitCode: number;
  signal: NodeJS.Signals | null;
}

/** Signals forwarded to the child; the runtime's own SIGTERM/SIGINT handling stays in place. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
];

export class Supervisor {
  readonly pid: number;
  /** Resolves once the child has exited and all of its output has been written on. */
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  #exit: ChildExit | undefined;

  constructor(child: ChildProcess, outputDone: Promise<unknown>) {
    this.#child = child;
    this.pid = child.pid ?? -1;
    const exit = once(child, "exit").then(([code, signal]) => {
      const s = signal as NodeJS.Signals | null;
      this.#exit = { exitCode: code ?? 128 + (s ? constants.signals[s] : 0), signal: s };
      return this.#exit;
    });
    this.exited = Promise.all([exit, outputDone]).then(([e]) => e);
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Sends `signal` to the child if it still runs; returns whether it was sent. */
  kill(signal: NodeJS.Signals): boolean {
    return this.running && this.#child.kill(signal);
  }

  /**
   * Forwards each of `signals` this process receives to the child, once per receipt. Returns a
   * function that removes the listeners.
   */
  forwardSignals(
    signals: readonly NodeJS.Signals[] = FORWARDED_SIGNALS,
    onForward?: (signal: NodeJS.Signals) => void,
  ): () => void {
    const listeners = signals.map((signal) => {
      const listener = () => {
        if (this.kill(signal)) onForward?.(signal);
      };
      process.on(signal, listener);
      return [signal, listener] as const;
    });
    return () => {
      for (const [signal, listener] of listeners) process.off(signal, listener);
    };
  }
}

/** Starts the child; throws InjectorError "agent-start-failed" when it cannot be executed. */
export async function supervise(options: SuperviseOptions): Promise<Supervisor> {
  const child = spawn(options.command, options.args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    await once(child, "spawn");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new InjectorError(
      "agent-start-failed",
      `could not start ${options.command}: ${code}; check --agent-command and that the ` +
        "binary was injected (agent-injector inject) and is executable",
      { cause: err },
    );
  }
  const pipeScrubbed = (from: NodeJS.ReadableStream | null, to: Writable) => {
    if (!from) return Promise.resolve();
    const scrubber = new SecretScrubber(options.secrets);
    from.pipe(scrubber).pipe(to, { end: false });
    return finished(scrubber);
  };
  const outputDone = Promise.all([
    pipeScrubbed(child.stdout, options.stdout),
    pipeScrubbed(child.stderr, options.stderr),
  ]);
  return new Supervisor(child, outputDone);
}
