import { PassThrough } from "node:stream";
import { type Program, runProgram } from "@buildpod/runtime";

/** Runs a program in this process with its own argv and env; returns the exit code and log lines. */
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
  const lines = text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });
  const summary = lines.findLast((l) => l.msg === "summary") as
    | (Record<string, unknown> & { summary: Record<string, unknown> })
    | undefined;
  return { code, lines, text, stderr: err.join(""), summary: summary?.summary ?? {} };
}
