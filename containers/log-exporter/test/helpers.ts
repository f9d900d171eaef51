// Runs the exporter as a child process (Node 24 strips the types of the TS entry) and collects
// its output, the way the container runs in a pod.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ENTRY = new URL("../src/main.ts", import.meta.url).pathname;

/** A fresh directory tree for one test: logs, lifecycle, state. */
export function workspace(): { dir: string; logs: string; lifecycle: string; state: string } {
  const dir = mkdtempSync(join(tmpdir(), "log-exporter-"));
  const logs = join(dir, "logs");
  const lifecycle = join(dir, "lifecycle");
  const state = join(dir, "state");
  for (const d of [logs, lifecycle, state]) mkdirSync(d, { recursive: true });
  return { dir, logs, lifecycle, state };
}

/** One JSON log line, read loosely: its message and whatever fields it carries. */
// biome-ignore lint/suspicious/noExplicitAny: log lines carry different fields
export type LogLine = { msg: string } & Record<string, any>;

export interface Exporter {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** The JSON summary line's `summary` object (after exit). */
  summary(): Record<string, unknown>;
  /** Every JSON log line on stdout so far, parsed. */
  logLines(): LogLine[];
}

/** Starts the exporter with these flags and env (plus a minimal, loopback-only environment). */
export function startExporter(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Exporter {
  const child = spawn(process.execPath, [ENTRY, ...args], {
    cwd,
    env: {
      PATH: process.env.PATH ?? "",
      BUILDKITE_JOB_ID: "job-1",
      BUILDPOD_LOG_LEVEL: "debug",
      // Never let a Google library look for a metadata server outside loopback.
      METADATA_SERVER_DETECTION: "none",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    summary: () => {
      const line = out.split("\n").find((l) => l.includes('"msg":"summary"'));
      return line ? (JSON.parse(line).summary as Record<string, unknown>) : {};
    },
    logLines: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine),
  };
}

/** Writes the workload-finished marker like the workload's wrapper does (temp + rename). */
export function finishWorkload(lifecycle: string, exitCode = 0): void {
  const tmp = join(lifecycle, ".workload-finished.tmp");
  writeFileSync(tmp, `${exitCode}\n`);
  renameSync(tmp, join(lifecycle, "workload-finished"));
}

/** Polls `check` until it returns true (generous: machines under load are slow). */
export async function waitFor(
  check: () => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A sinks file with one sink named `main` (and the default pointing at it). */
export function sinksFile(dir: string, sink: Record<string, unknown>): string {
  const path = join(dir, "sinks.yaml");
  writeFileSync(path, JSON.stringify({ default: "main", sinks: { main: sink } }, null, 2));
  return path;
}

/** The common flags of a test run. */
export function baseArgs(ws: ReturnType<typeof workspace>, sinks: string): string[] {
  return [
    "--logs",
    ws.logs,
    "--lifecycle-dir",
    ws.lifecycle,
    "--state-dir",
    ws.state,
    "--sinks",
    sinks,
    "--poll-interval",
    "100ms",
    "--flush-interval",
    "100ms",
  ];
}
