import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..", "..");
export const BUNDLE = join(ROOT, "containers", "agent-injector", "dist", "agent-injector.mjs");
export const STAND_IN = join(import.meta.dirname, "fixtures", "stand-in-agent.sh");

/** Builds the bundle when `pnpm test` has not already (e.g. a single vitest run). */
export function ensureBundle(): void {
  if (existsSync(BUNDLE)) return;
  execFileSync(process.execPath, [join(ROOT, "scripts", "build.ts"), "agent-injector"], {
    cwd: ROOT,
    stdio: "ignore",
  });
}

export interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process ended and its output was read. */
  exited: Promise<number>;
  /** Resolves once stdout contains `text`. */
  waitFor: (text: string) => Promise<void>;
}

/** Starts the bundle with exactly `env` (plus PATH) as its environment. */
export function start(args: string[], env: Record<string, string>): Started {
  const child = spawn(process.execPath, [BUNDLE, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout?.on("data", (c) => {
    out += c;
    for (const w of waiters.filter((w) => out.includes(w.text))) w.resolve();
  });
  child.stderr?.on("data", (c) => {
    err += c;
  });
  const exited = new Promise<number>((resolve) => {
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal ? 15 : 0)));
  });
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      if (out.includes(text)) return resolve();
      waiters.push({ text, resolve });
      void exited.then(() =>
        reject(new Error(`exited before printing ${JSON.stringify(text)}:\n${out}\n${err}`)),
      );
    });
  return { child, stdout: () => out, stderr: () => err, exited, waitFor };
}

/** Runs the bundle to its end. */
export async function runToEnd(args: string[], env: Record<string, string>) {
  const started = start(args, env);
  const code = await started.exited;
  return { code, stdout: started.stdout(), stderr: started.stderr() };
}

/** The JSON log lines of a run's stdout (other lines, e.g. the agent's, are skipped). */
export function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The summary record a run printed last. */
export function summaryOf(stdout: string): Record<string, unknown> {
  const line = logLines(stdout).findLast((l) => l.msg === "summary");
  if (!line) throw new Error(`no summary line in:\n${stdout}`);
  return line.summary as Record<string, unknown>;
}
