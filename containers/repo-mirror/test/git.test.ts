import { describe, expect, it } from "vitest";
import { classifyFailure, GitError, gitEnv, parseProgress, scrub } from "../src/git.ts";

describe("progress lines", () => {
  it.each([
    [
      "Receiving objects:  45% (450/1000), 1.20 MiB | 2.40 MiB/s",
      {
        stage: "Receiving objects",
        percent: 45,
        processed: 450,
        total: 1000,
        bytes: 1258291,
        bytesPerSecond: 2516582,
      },
    ],
    [
      "remote: Compressing objects: 100% (5/5), done.",
      { stage: "Compressing objects", percent: 100, processed: 5, total: 5 },
    ],
    [
      "Unpacking objects: 100% (9/9), 750 bytes | 750.00 KiB/s, done.",
      { stage: "Unpacking objects", bytes: 750 },
    ],
    ["Updating files:  12% (6000/50000)", { stage: "Updating files", percent: 12, total: 50000 }],
  ])("%s", (line, expected) => {
    expect(parseProgress(line)).toMatchObject(expected);
  });

  it("ignores lines that are not progress", () => {
    expect(parseProgress("From git://127.0.0.1/app")).toBeUndefined();
    expect(parseProgress("remote: Total 9 (delta 1), reused 0 (delta 0)")).toBeUndefined();
  });
});

describe("failure classes", () => {
  it.each([
    ["fatal: unable to connect to 127.0.0.1:1:\nConnection refused", "unreachable"],
    ["fatal: unable to access 'https://h/r/': Could not resolve host: h", "unreachable"],
    ["fatal: couldn't find remote ref refs/heads/nope", "missing-ref"],
    ["error: Server does not allow request for unadvertised object abc", "missing-ref"],
    [
      "error: inflate: data stream error (incorrect header check)\nfatal: packed object X is corrupt",
      "corrupt",
    ],
    ["fatal: bad object HEAD", "corrupt"],
    ["fatal: something else entirely", "other"],
  ])("%j is %s", (stderr, kind) => {
    expect(classifyFailure(stderr)).toBe(kind);
  });
});

describe("git's environment", () => {
  it("drops variables that would redirect git and never prompts", () => {
    process.env.GIT_DIR = "/elsewhere";
    process.env.GIT_CONFIG_COUNT = "1";
    try {
      const env = gitEnv({ EXTRA: "1" });
      expect(env.GIT_DIR).toBeUndefined();
      expect(env.GIT_CONFIG_COUNT).toBeUndefined();
      expect(env).toMatchObject({ GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", EXTRA: "1" });
    } finally {
      delete process.env.GIT_DIR;
      delete process.env.GIT_CONFIG_COUNT;
    }
  });

  it("names the git command in a failure, not its leading -c options", () => {
    const err = new GitError(
      ["-c", "fetch.unpackLimit=1", "clone", "--", "u", "d"],
      128,
      "fatal: x",
    );
    expect(err.message).toBe("git clone exited with 128: fatal: x");
  });

  it("scrubs secrets and URL passwords from text", () => {
    expect(scrub("token abcdef1234 in https://u:pw@h/r", ["abcdef1234"])).toBe(
      "token *** in https://u:***@h/r",
    );
  });
});

describe("progress lines in the log", () => {
  it("logs each stage at most once per interval, and its end once", async () => {
    const { PassThrough } = await import("node:stream");
    const { createLogger } = await import("@buildpod/runtime");
    const { reporter } = await import("../src/checkout.ts");
    const out = new PassThrough();
    const lines: Array<Record<string, unknown>> = [];
    out.on("data", (c: Buffer) => {
      for (const l of c.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
    });
    const report = reporter(createLogger({ component: "test", destination: out }), 60_000);
    const progress = (processed: number) => ({
      type: "progress" as const,
      phase: "clone",
      progress: {
        stage: "Receiving objects",
        percent: processed,
        processed,
        total: 100,
        bytes: processed * 1000,
      },
    });
    for (let i = 1; i <= 100; i++) report(progress(i));
    report(progress(100));
    report({ type: "phase", phase: "clone", durationMs: 1234 });

    const logged = lines.filter((l) => l.msg === "progress");
    expect(logged.map((l) => l.objects)).toEqual([1, 100]);
    expect(logged[1]).toMatchObject({
      phase: "clone",
      stage: "Receiving objects",
      percent: 100,
      bytes: 100_000,
    });
    expect(lines.at(-1)).toMatchObject({ msg: "phase done", phase: "clone", duration_ms: 1234 });
  });
});
