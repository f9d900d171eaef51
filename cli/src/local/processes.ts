import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";

/** One container of the local pod, started as a process. */
export interface LocalProcess {
  name: string;
  child: ChildProcess;
  startedAt: number;
  /** Resolves with the exit code (128 + signal number when killed by a signal). */
  exited: Promise<number>;
  /** The last lines it printed, for the error of a failed init container. */
  lastLines(): string[];
  /** Lines printed so far. */
  lineCount(): number;
}

export interface StartOptions {
  name: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Every output line goes here, as written (the container's log). */
  logFile: string;
  /** Called with each output line, for progress. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Also write each line in the CRI log format, as the kubelet does for every container. */
  criLogFile?: string;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
const KEEP_LINES = 20;

/** Starts a process with its own log file, keeping its last lines in memory. */
export function startProcess(options: StartOptions): LocalProcess {
  const [command, ...args] = options.argv;
  if (!command) throw new Error(`could not start ${options.name}: empty command`);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = createWriteStream(options.logFile);
  const cri = options.criLogFile ? createWriteStream(options.criLogFile) : undefined;
  const tail: string[] = [];
  let lines = 0;
  const follow = (stream: NodeJS.ReadableStream, kind: "stdout" | "stderr") => {
    const reader = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    reader.on("line", (line) => {
      lines++;
      log.write(`${line}\n`);
      // `<RFC3339Nano> <stream> F <message>`: the kubelet's format; `F` marks a full line.
      cri?.write(`${criTime()} ${kind} F ${line}\n`);
      tail.push(line);
      if (tail.length > KEEP_LINES) tail.shift();
      options.onLine?.(line, kind);
    });
    return once(reader, "close");
  };
  const drained = Promise.all([
    follow(child.stdout as NodeJS.ReadableStream, "stdout"),
    follow(child.stderr as NodeJS.ReadableStream, "stderr"),
  ]);
  const exited = new Promise<number>((resolve) => {
    child.once("error", (err) => {
      tail.push(`could not start: ${err.message}`);
      resolve(127);
    });
    child.once("close", (code, signal) =>
      resolve(code ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 0)),
    );
  }).then(async (code) => {
    await drained.catch(() => {});
    await Promise.all([closeStream(log), cri ? closeStream(cri) : undefined]);
    return code;
  });
  return {
    name: options.name,
    child,
    startedAt: Date.now(),
    exited,
    lastLines: () => [...tail],
    lineCount: () => lines,
  };
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => stream.end(resolve));
}

// The kubelet writes nanoseconds; Date has milliseconds, padded to the same width.
function criTime(): string {
  return new Date().toISOString().replace("Z", "000000Z");
}

/** Waits for a process to exit, up to `ms`; true when it did. */
export async function exitsWithin(proc: LocalProcess, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  const done = await Promise.race([proc.exited.then(() => true as const), timeout]);
  clearTimeout(timer);
  return done;
}
