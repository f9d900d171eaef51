import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { option, z } from "@buildpod/config";
import {
  BuildpodError,
  defineCommand,
  ExitCode,
  type Program,
  runProgram,
} from "@buildpod/runtime";
import { describe, expect, it } from "vitest";

function capture() {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on("data", (c) => chunks.push(String(c)));
  return { stream, text: () => chunks.join("") };
}

async function run(program: Program, argv: string[], env: Record<string, string> = {}) {
  const stdout = capture();
  const stderr = capture();
  const code = await runProgram(program, {
    argv,
    env,
    stdout: stdout.stream,
    stderr: stderr.stream,
  });
  const lines = stdout
    .text()
    .split("\n")
    .filter((l) => l.startsWith('{"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, stdout: stdout.text(), stderr: stderr.text(), lines };
}

const greet = defineCommand({
  description: "greets someone",
  kind: "init",
  options: {
    name: option({ schema: z.string(), description: "who to greet" }),
    times: option({ schema: z.number().int().positive().default(1), description: "how often" }),
    token: option({ schema: z.string().optional(), description: "API token", secret: true }),
    fail: option({
      schema: z.enum(["no", "task", "bug"]).default("no"),
      description: "how to fail",
    }),
  },
  async run({ config, logger }) {
    if (config.fail === "task") {
      throw new BuildpodError("DEMO_NO_GREETING", "could not greet: nobody answered", {
        hint: "try again later",
      });
    }
    if (config.fail === "bug") throw new TypeError("undefined is not a function");
    logger.info({ token_used: config.token }, `hello ${config.name}`);
    // As a server's message quoting the token it was sent would carry it into the summary.
    const echoed = config.token ? { answer: `token ${config.token} accepted` } : {};
    return { exitCode: ExitCode.OK, summary: { greeted: config.times, ...echoed } };
  },
});

const program: Program = {
  name: "demo",
  description: "a demonstration program",
  envPrefix: "DEMO",
  commands: { greet, other: { ...greet, description: "the same again" } },
  defaultCommand: "greet",
};

describe("runProgram", () => {
  it("prints help generated from the schema", async () => {
    const { code, stdout } = await run(program, ["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("greet       greets someone (default)");
    expect(stdout).toMatch(/--name VALUE\s+who to greet\s+\[env DEMO_NAME; required\]/);
    expect(stdout).toMatch(/--times N\s+how often\s+\[env DEMO_TIMES; default 1\]/);
    expect(stdout).toContain("--token-file FILE");
    expect(stdout).toContain("BUILDPOD_LIFECYCLE_DIR");
  });

  it("prints the version", async () => {
    const { code, stdout } = await run(program, ["--version"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^demo \S+\n$/);
  });

  it("exits 2 naming a wrong type and an unknown key at once, before any work", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    const config = join(dir, "demo.yaml");
    writeFileSync(config, "name: ops\ntimes: often\nnmae: typo\n");
    const { code, stderr, lines } = await run(program, ["greet", "--config", config], {
      BUILDPOD_LIFECYCLE_DIR: dir,
    });
    expect(code).toBe(ExitCode.CONFIG);
    expect(stderr).toContain("2 problems");
    expect(stderr).toMatch(
      /times \(.*demo\.yaml line 2\): expected a value of type number, got "often"/,
    );
    expect(stderr).toMatch(
      /nmae \(.*demo\.yaml line 3\): expected a known key; did you mean "name"\?/,
    );
    expect(lines.some((l) => String(l.msg).startsWith("hello"))).toBe(false);
    expect(lines.at(-1)).toMatchObject({ msg: "summary", exit_code: 2, exit_reason: "CONFIG" });
    const status = JSON.parse(readFileSync(join(dir, "status", "demo.json"), "utf8"));
    expect(status).toMatchObject({ container: "demo", command: "greet", exit_code: 2 });
  });

  it("runs the command, prints one summary line and writes the status file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    const { code, lines } = await run(program, ["--name", "ops", "--times", "3"], {
      BUILDPOD_LIFECYCLE_DIR: dir,
    });
    expect(code).toBe(0);
    expect(lines.find((l) => l.msg === "hello ops")).toMatchObject({
      component: "demo",
      level: "info",
    });
    const summaries = lines.filter((l) => l.msg === "summary");
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ exit_code: 0, summary: { greeted: 3 } });
    const status = JSON.parse(readFileSync(join(dir, "status", "demo.json"), "utf8"));
    expect(status).toMatchObject({ exit_code: 0, exit_reason: "OK", summary: { greeted: 3 } });
  });

  it("never prints a secret: not in logs, the status file or --print-config", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "tok-123456789\n");
    const ran = await run(program, ["--name", "ops", "--token-file", tokenFile], {
      BUILDPOD_LIFECYCLE_DIR: dir,
    });
    expect(ran.code).toBe(0);
    expect(ran.stdout).not.toContain("tok-123456789");
    expect(ran.lines.find((l) => l.msg === "hello ops")?.token_used).toBe("[redacted]");
    const status = readFileSync(join(dir, "status", "demo.json"), "utf8");
    expect(status).not.toContain("tok-123456789");
    expect(JSON.parse(status).summary).toMatchObject({ answer: "token [redacted] accepted" });
    const printed = await run(program, ["--name", "ops", "--print-config"], {
      DEMO_TOKEN_FILE: tokenFile,
    });
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout)).toMatchObject({
      name: "ops",
      token: "<secret from env DEMO_TOKEN_FILE>",
    });
    expect(printed.stdout).not.toContain("tok-123456789");
  });

  it("maps a task failure to its exit code and a bug to 70", async () => {
    const task = await run(program, ["--name", "x", "--fail", "task"]);
    expect(task.code).toBe(ExitCode.FAILED);
    const failure = task.lines.find((l) => l.level === "error");
    expect(failure).toMatchObject({
      msg: "could not greet: nobody answered; try again later",
      code: "DEMO_NO_GREETING",
    });
    // A failure the program explained is one line without a stack trace.
    expect(failure?.err).toBeUndefined();
    expect(task.lines.at(-1)).toMatchObject({
      summary: { error: "could not greet: nobody answered; try again later" },
    });
    const bug = await run(program, ["--name", "x", "--fail", "bug"]);
    expect(bug.code).toBe(ExitCode.INTERNAL);
    expect(bug.lines.at(-1)).toMatchObject({ exit_reason: "INTERNAL" });
  });

  it("says when a container is not built yet", async () => {
    const placeholder: Program = { ...program, notBuilt: "planned in issue #9" };
    const help = await run(placeholder, ["--help"]);
    expect(help.stdout).toContain("NOT BUILT YET: planned in issue #9");
    const ran = await run(placeholder, ["--name", "x"]);
    expect(ran.code).toBe(ExitCode.FAILED);
    expect(ran.stderr).toContain("not built yet");
  });

  it("rejects a mistyped command even when the program has a default one", async () => {
    const ran = await run(program, ["gret", "--name", "x"]);
    expect(ran.code).toBe(ExitCode.CONFIG);
    expect(ran.stderr).toContain('unknown command "gret"; did you mean "greet"?');
    expect(ran.lines.some((l) => String(l.msg).startsWith("hello"))).toBe(false);
  });

  it("reports a busy health port as a clear failure, not a bug", async () => {
    const blocker = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    const port = String((blocker.address() as { port: number }).port);
    const ran = await run(program, [
      "--name",
      "x",
      "--http-port",
      port,
      "--http-host",
      "127.0.0.1",
    ]);
    blocker.close();
    expect(ran.code).toBe(ExitCode.FAILED);
    expect(ran.lines.find((l) => l.level === "error")).toMatchObject({
      code: "BUILDPOD_HTTP_LISTEN",
      msg: expect.stringContaining(`could not listen on 127.0.0.1:${port}`),
    });
  });

  it("ends a sidecar whose drain ignores its deadline, reporting it incomplete", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    const stuck: Program = {
      name: "stuck",
      description: "a sidecar whose delivery never returns",
      envPrefix: "STUCK",
      commands: {
        run: defineCommand({
          description: "waits for the workload, then hangs on a delivery",
          kind: "sidecar",
          options: {},
          async run({ lifecycle, partialSummary }) {
            partialSummary(() => ({ sink: "nowhere", delivered: 0, undelivered: 7 }));
            await lifecycle.finished;
            return new Promise(() => {});
          },
        }),
      },
    };
    const running = run(stuck, [], {
      BUILDPOD_LIFECYCLE_DIR: dir,
      BUILDPOD_DRAIN_TIMEOUT: "300ms",
    });
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(join(dir, "workload-finished"), "0\n");
    const started = Date.now();
    const ran = await running;
    expect(ran.code).toBe(ExitCode.INCOMPLETE);
    // What the run registered so far is reported, not only that it was overdue.
    expect(ran.lines.at(-1)).toMatchObject({
      msg: "summary",
      summary: { sink: "nowhere", delivered: 0, undelivered: 7, drain_overdue: true },
    });
    // Deadline 0.3 s plus the runtime's 2 s grace; a loaded machine gets slack, a hang more.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("rejects an unknown command of a program without a default", async () => {
    const { defaultCommand: _, ...noDefault } = program;
    const ran = await run(noDefault, ["gret"]);
    expect(ran.code).toBe(ExitCode.CONFIG);
    expect(ran.stderr).toMatch(/unknown command "gret"; did you mean "greet"\?/);
    // One line, not the whole help after it.
    expect(ran.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("refuses words it would otherwise drop: -x flags and arguments to a command without any", async () => {
    const ran = await run(program, ["--name", "x", "-v", "./out"]);
    expect(ran.code).toBe(ExitCode.CONFIG);
    expect(ran.stderr).toContain("-v (flag -v): expected a known flag (flags are written --name)");
    expect(ran.stderr).toContain("./out: expected a flag; this command takes no other arguments");
  });

  it("names a mistyped env var when a required value is missing, and keeps --lifecycle-dir", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    mkdirSync(join(dir, "status"));
    const ran = await run(program, ["--lifecycle-dir", dir], { DEMO_NAMEE: "ops" });
    expect(ran.code).toBe(ExitCode.CONFIG);
    expect(ran.stderr).toContain(
      'note: env DEMO_NAMEE matches no option; did you mean "DEMO_NAME"?',
    );
    const status = JSON.parse(readFileSync(join(dir, "status", "demo.json"), "utf8"));
    expect(status).toMatchObject({ exit_code: ExitCode.CONFIG, summary: { problems: 1 } });
  });
});
