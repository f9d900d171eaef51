import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { REDACTED, SecretScrubber } from "../src/scrub.ts";
import { supervise } from "../src/supervise.ts";

const standIn = join(import.meta.dirname, "fixtures", "stand-in-agent.sh");
const TOKEN = "bkaj_s3cret-token-value";

/** A sink that keeps everything written to it. */
function collector() {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

async function scrub(secrets: string[], pieces: (string | Buffer)[]): Promise<string> {
  const scrubber = new SecretScrubber(secrets);
  const out = collector();
  scrubber.pipe(out.stream);
  for (const p of pieces) scrubber.write(p);
  scrubber.end();
  await new Promise((r) => out.stream.on("finish", r));
  return out.text();
}

describe("SecretScrubber", () => {
  it.each([
    ["whole", [`token=${TOKEN}\n`], `token=${REDACTED}\n`],
    ["twice in one chunk", [`${TOKEN}${TOKEN}`], `${REDACTED}${REDACTED}`],
    ["split over two chunks", ["a bkaj_s3cr", "et-token-value b"], `a ${REDACTED} b`],
    ["one byte at a time", [...`x${TOKEN}y`], `x${REDACTED}y`],
    ["a prefix that is not the token", ["bkaj_s3", "cr!"], "bkaj_s3cr!"],
    ["a prefix at the very end", ["ends with bkaj_s3"], "ends with bkaj_s3"],
    ["nothing secret", ["héllo ✓\n"], "héllo ✓\n"],
  ])("%s", async (_name, pieces, expected) => {
    expect(await scrub([TOKEN, "other-secret"], pieces)).toBe(expected);
  });

  it("keeps multi-byte characters whole when a chunk splits one", async () => {
    const bytes = Buffer.from(`✓${TOKEN}✓`);
    expect(
      await scrub([TOKEN], [bytes.subarray(0, 1), bytes.subarray(1, 7), bytes.subarray(7)]),
    ).toBe(`✓${REDACTED}✓`);
  });
});

describe("supervise", () => {
  const env = { PATH: process.env.PATH, BUILDKITE_AGENT_ACCESS_TOKEN: TOKEN };

  it("passes the exit code and the output through, with the token scrubbed", async () => {
    const out = collector();
    const err = collector();
    const child = await supervise({
      command: standIn,
      args: ["start", "--acquire-job", "j-1"],
      env: { ...env, STAND_IN_EXIT: "7" },
      secrets: [TOKEN],
      stdout: out.stream,
      stderr: err.stream,
    });
    await expect(child.exited).resolves.toEqual({ exitCode: 7, signal: null });
    expect(out.text()).toBe(`args: start --acquire-job j-1\ntoken: ${REDACTED}\n`);
    expect(err.text()).toBe(`on stderr: ${REDACTED}\n`);
    expect(child.running).toBe(false);
  });

  it("forwards a signal it receives to the child once, and reports how the child ended", async () => {
    const out = new PassThrough();
    let seen = "";
    out.on("data", (c) => {
      seen += c;
    });
    const child = await supervise({
      command: standIn,
      args: [],
      env: { ...env, STAND_IN_MODE: "wait" },
      secrets: [TOKEN],
      stdout: out,
      stderr: collector().stream,
    });
    const forwarded: string[] = [];
    const stop = child.forwardSignals(["SIGHUP"], (s) => forwarded.push(s));
    try {
      while (!seen.includes("ready")) await new Promise((r) => setTimeout(r, 20));
      process.kill(process.pid, "SIGHUP");
      await expect(child.exited).resolves.toEqual({ exitCode: 129, signal: null });
    } finally {
      stop();
    }
    expect(forwarded).toEqual(["SIGHUP"]);
    expect(seen).toContain("got SIGHUP");
  });

  it("reports a child killed by a signal as 128 + its number", async () => {
    const child = await supervise({
      command: standIn,
      args: [],
      env: { ...env, STAND_IN_MODE: "ignore-term" },
      secrets: [],
      stdout: collector().stream,
      stderr: collector().stream,
    });
    child.kill("SIGKILL");
    await expect(child.exited).resolves.toEqual({ exitCode: 137, signal: "SIGKILL" });
    expect(child.kill("SIGTERM")).toBe(false);
  });

  it("names a command that cannot be started", async () => {
    const attempt = supervise({
      command: "/nonexistent/buildkite-agent",
      args: [],
      env,
      secrets: [],
      stdout: collector().stream,
      stderr: collector().stream,
    });
    await expect(attempt).rejects.toMatchObject({
      reason: "agent-start-failed",
      message: expect.stringMatching(/could not start \/nonexistent\/buildkite-agent: ENOENT/),
    });
  });
});
