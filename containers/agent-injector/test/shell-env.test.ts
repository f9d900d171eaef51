import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeJobEnv } from "../src/job-env.ts";
import { isShellName, renderShellEnv, selectJobEnv, shellQuote } from "../src/shell-env.ts";

const run = promisify(execFile);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agent-injector-env-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Sources `file` in dash and returns the resulting environment, read with `env -0`. */
async function sourceBack(file: string): Promise<Map<string, Buffer>> {
  const { stdout } = await run("/bin/sh", ["-c", '. "$1" && exec env -0', "sh", file], {
    env: { PATH: "/usr/bin:/bin" },
    encoding: "buffer",
    cwd: dir,
    maxBuffer: 64 * 1024 * 1024,
  });
  const vars = new Map<string, Buffer>();
  let start = 0;
  for (let nul = stdout.indexOf(0); nul >= 0; nul = stdout.indexOf(0, start)) {
    const entry = stdout.subarray(start, nul);
    const eq = entry.indexOf("=");
    vars.set(entry.subarray(0, eq).toString(), Buffer.from(entry.subarray(eq + 1)));
    start = nul + 1;
  }
  return vars;
}

// Every value a job env can hold that a naive `NAME="value"` file would mangle or execute.
const CANARY = "pwned-canary";
const values: Record<string, string> = {
  BUILDKITE_EMPTY: "",
  BUILDKITE_PLAIN: "main",
  BUILDKITE_SINGLE_QUOTE: "it's",
  BUILDKITE_ONLY_QUOTES: "'''",
  BUILDKITE_QUOTE_ESCAPE: `'\\''`,
  BUILDKITE_DOUBLE_QUOTE: 'say "hi"',
  BUILDKITE_COMMAND_SUB: `$(touch ${CANARY})`,
  BUILDKITE_BACKTICKS: `\`touch ${CANARY}\``,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text is the point
  BUILDKITE_DOLLAR: "$HOME ${PATH} $1 $$ $?",
  BUILDKITE_BACKSLASHES: "C:\\dir\\n\\t\\\\ \\",
  BUILDKITE_NEWLINES: "line one\nline two\n\n",
  BUILDKITE_LEADING_NEWLINE: "\nstarts with a newline",
  BUILDKITE_CR_TAB: "a\r\nb\tc",
  BUILDKITE_UNICODE: "héllo wörld ✓ 日本語 🚀 e\u0301 \u202e rtl",
  BUILDKITE_SHELL_META: "; rm -rf / && echo | cat > x < y & * ? [a] ~ # !",
  BUILDKITE_LEADING_DASH: "-n -e",
  BUILDKITE_EQUALS: "a=b=c",
  BUILDKITE_MESSAGE: `Merge "feature" into 'main'\n\n* fix \`bug\` $(whoami)`,
  BUILDKITE_LONG: "x'y".repeat(40_000),
};

describe("the shell env file", () => {
  it("sources back in dash byte for byte, and runs nothing", async () => {
    const envDir = join(dir, "roundtrip");
    await writeJobEnv({
      dir: envDir,
      vars: values,
      token: "bkaj_tok'en$(x)",
      groupReadable: false,
    });
    const sourced = await sourceBack(join(envDir, "buildkite.env"));

    for (const [name, value] of Object.entries(values)) {
      expect(sourced.get(name), name).toEqual(Buffer.from(value));
    }
    expect(sourced.get("BUILDKITE_AGENT_ACCESS_TOKEN")).toEqual(Buffer.from("bkaj_tok'en$(x)"));
    expect(existsSync(join(dir, CANARY))).toBe(false);
  });

  it("writes the same values to the JSON file and the token alone to its own file", async () => {
    const envDir = join(dir, "json");
    await writeJobEnv({ dir: envDir, vars: values, token: "bkaj_abc", groupReadable: false });
    const json = JSON.parse(await readFile(join(envDir, "buildkite.json"), "utf8"));
    expect(json).toEqual({ ...values, BUILDKITE_AGENT_ACCESS_TOKEN: "bkaj_abc" });
    expect(await readFile(join(envDir, "token"), "utf8")).toBe("bkaj_abc");
  });

  it("restricts the files to their owner, or to owner and group when asked", async () => {
    const cases = [
      { name: "private", groupReadable: false, dirMode: 0o700, fileMode: 0o600 },
      { name: "group", groupReadable: true, dirMode: 0o750, fileMode: 0o640 },
    ];
    for (const c of cases) {
      const envDir = join(dir, `modes-${c.name}`);
      await writeJobEnv({ dir: envDir, vars: {}, token: "t", groupReadable: c.groupReadable });
      expect((await stat(envDir)).mode & 0o777, c.name).toBe(c.dirMode);
      for (const f of ["buildkite.env", "buildkite.json", "token"]) {
        expect((await stat(join(envDir, f))).mode & 0o777, `${c.name} ${f}`).toBe(c.fileMode);
      }
    }
  });

  it("hands the directory and files to --owner", async () => {
    // Root may give files to anyone; any other user only to itself and its own groups.
    const isRoot = process.getuid?.() === 0;
    const owner = isRoot
      ? { uid: 4242, gid: 4343 }
      : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const envDir = join(dir, "owned");
    await writeJobEnv({ dir: envDir, vars: {}, token: "t", groupReadable: false, owner });
    for (const path of [envDir, join(envDir, "buildkite.env"), join(envDir, "token")]) {
      const info = await stat(path);
      expect({ uid: info.uid, gid: info.gid }, path).toEqual(owner);
    }
  });

  it("skips names that are not shell identifiers, keeping them in the JSON file", async () => {
    const vars = { "BUILDKITE_BAD-NAME": "1", "BUILDKITE_X.Y": "2", BUILDKITE_OK: "3" };
    const envDir = join(dir, "names");
    const written = await writeJobEnv({ dir: envDir, vars, token: "t", groupReadable: false });
    expect(written.skipped).toEqual(["BUILDKITE_BAD-NAME", "BUILDKITE_X.Y"]);
    const sourced = await sourceBack(written.shellFile);
    expect(sourced.get("BUILDKITE_OK")?.toString()).toBe("3");
    const json = JSON.parse(await readFile(written.jsonFile, "utf8"));
    expect(json["BUILDKITE_BAD-NAME"]).toBe("1");
  });
});

describe("shell helpers", () => {
  it.each([
    ["BUILDKITE_JOB_ID", true],
    ["_x1", true],
    ["1ABC", false],
    ["A-B", false],
    ["A B", false],
    ["", false],
    ["ÄBC", false],
  ])("isShellName(%j) is %s", (name, ok) => {
    expect(isShellName(name)).toBe(ok);
  });

  it("quotes with single quotes and escapes each quote as '\\''", () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
    expect(renderShellEnv({ A: "x" }).text).toContain("export A='x'\n");
  });

  it("selects the job variables by pattern, drops the excluded ones, and sorts them", () => {
    const env = {
      BUILDKITE_B: "b",
      BUILDKITE_A: "a",
      BUILDKITE_AGENT_TOKEN: "registration",
      BUILDKITE: "true",
      CI: "true",
      HOME: "/root",
      BUILDKITE_UNSET: undefined,
    };
    const picked = selectJobEnv(env, ["BUILDKITE", "BUILDKITE_*", "CI"], ["BUILDKITE_AGENT_TOKEN"]);
    expect(Object.keys(picked)).toEqual(["BUILDKITE", "BUILDKITE_A", "BUILDKITE_B", "CI"]);
  });
});
