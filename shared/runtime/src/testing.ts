import { PassThrough } from "node:stream";
import { runProgram } from "./cli.ts";
import type { Program } from "./command.ts";

/**
 * For tests of programs built on the runtime (`@buildpod/runtime/testing`): runs a program in
 * this process with its own argv and env, and returns the exit code, the JSON log lines, what
 * went to stderr, and the summary it reported.
 */
export async function runInProcess(
  program: Program,
  argv: string[],
  env: Record<string, string | undefined>,
) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on("data", (c: Buffer) => out.push(c.toString()));
  stderr.on("data", (c: Buffer) => err.push(c.toString()));
  const code = await runProgram(program, { argv, env, stdout, stderr });
  const text = out.join("");
  // Log lines are one JSON object each; other output (--print-config's document) is skipped.
  const lines = text
    .split("\n")
    .filter((l) => l.startsWith("{") && l.endsWith("}"))
    .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });
  const summary = lines.findLast((l) => l.msg === "summary") as
    | (Record<string, unknown> & { summary: Record<string, unknown> })
    | undefined;
  return { code, lines, text, stderr: err.join(""), summary: summary?.summary ?? {} };
}
