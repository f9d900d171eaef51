import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";
import { ensureBundle, runToEnd, start, summaryOf } from "./helpers.ts";

const run = promisify(execFile);
const TOKEN = "bkaj_e2e-job-token-0123456789";
let bk: FakeBuildkite;
let dir: string;
let image: string;
let n = 0;

beforeAll(async () => {
  ensureBundle();
  bk = await startFakeBuildkite({ token: TOKEN });
  dir = await mkdtemp(join(tmpdir(), "agent-injector-e2e-"));
  // The image's layout (images/Dockerfile): the binary with VERSION and SHA256 beside it.
  image = join(dir, "image");
  await mkdir(image);
  await writeFile(join(image, "buildkite-agent"), "#!/bin/sh\necho stand-in agent\n");
  await chmod(join(image, "buildkite-agent"), 0o755);
  await writeFile(join(image, "VERSION"), "3.137.0\n");
});
afterAll(async () => {
  await bk.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh pod: its own lifecycle and bin directories, and the job env as the pod spec gives it. */
async function pod(extraEnv: Record<string, string> = {}) {
  const root = join(dir, `pod-${++n}`);
  await mkdir(root);
  const env = {
    BUILDPOD_LIFECYCLE_DIR: join(root, "buildpod"),
    AGENT_INJECTOR_AGENT_BINARY: join(image, "buildkite-agent"),
    AGENT_INJECTOR_DEST: join(root, "bin"),
    BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
    BUILDKITE_JOB_ID: bk.jobId,
    BUILDKITE_BUILD_ID: bk.buildId,
    BUILDKITE_AGENT_ACCESS_TOKEN: TOKEN,
    ...extraEnv,
  };
  return { root, env, envDir: join(root, "buildpod", "env"), bin: join(root, "bin") };
}

describe("agent-injector inject", () => {
  it("verifies the token, copies the agent, writes the env files; a re-run copies nothing", async () => {
    const p = await pod({ BUILDKITE_MESSAGE: "fix `it` $(now)\n'quoted'", CI: "true" });
    const first = await runToEnd(["inject"], p.env);
    expect(first.code, first.stderr).toBe(0);
    expect(summaryOf(first.stdout)).toMatchObject({
      job_state: "running",
      agent_version: "3.137.0",
      binaries: 1,
      copied: 1,
    });
    expect(await readFile(join(p.bin, "buildkite-agent.version"), "utf8")).toBe("3.137.0\n");
    expect(await readFile(join(p.envDir, "token"), "utf8")).toBe(TOKEN);
    const json = JSON.parse(await readFile(join(p.envDir, "buildkite.json"), "utf8"));
    expect(json).toMatchObject({ BUILDKITE_MESSAGE: "fix `it` $(now)\n'quoted'", CI: "true" });
    expect(json).not.toHaveProperty("BUILDPOD_LIFECYCLE_DIR");
    expect(first.stdout + first.stderr).not.toContain(TOKEN);
    const status = JSON.parse(
      await readFile(join(p.root, "buildpod", "status", "agent-injector.json"), "utf8"),
    );
    expect(status).toMatchObject({ command: "inject", exit_code: 0 });

    const before = await stat(join(p.bin, "buildkite-agent"));
    const again = await runToEnd(["inject"], p.env);
    expect(again.code, again.stderr).toBe(0);
    expect(summaryOf(again.stdout)).toMatchObject({ binaries: 1, copied: 0 });
    const after = await stat(join(p.bin, "buildkite-agent"));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it("writes a shell file that dash sources back to exactly the env it was given", async () => {
    const tricky = {
      BUILDKITE_MESSAGE: "Merge 'x' \"y\" $(touch pwned) `touch pwned` \\n\n\nend\n",
      BUILDKITE_LABEL: ":rocket: déploiement ✓ 🚀 \u202e",
      BUILDKITE_EMPTY: "",
    };
    const p = await pod(tricky);
    const result = await runToEnd(["inject"], p.env);
    expect(result.code, result.stdout).toBe(0);
    const shell = join(p.envDir, "buildkite.env");
    const script =
      '. "$1" && printf "%s\\0" "$BUILDKITE_MESSAGE" "$BUILDKITE_LABEL" "$BUILDKITE_EMPTY"';
    const { stdout } = await run("/bin/sh", ["-c", script, "sh", shell], {
      cwd: p.root,
      encoding: "buffer",
    });
    const expected = Buffer.from(`${Object.values(tricky).join("\0")}\0`);
    expect(stdout).toEqual(expected);
    await expect(stat(join(p.root, "pwned"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("takes the token from a mounted Secret file, trailing newline and all", async () => {
    const p = await pod();
    const { BUILDKITE_AGENT_ACCESS_TOKEN: _, ...env } = p.env;
    const secret = join(p.root, "token-secret");
    await writeFile(secret, `${TOKEN}\n`);
    const result = await runToEnd(["inject", "--token-file", secret], env);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(p.envDir, "token"), "utf8")).toBe(TOKEN);
  });

  it.each<{ name: string; env: Record<string, string>; code: number; says: RegExp }>([
    {
      name: "a rejected token (401)",
      env: { BUILDKITE_AGENT_ACCESS_TOKEN: "bkaj_not-the-job-token" },
      code: 1,
      says: /answered 401 .*not valid; check that the Secret holds the access token of job/,
    },
    {
      name: "a missing token",
      env: { BUILDKITE_AGENT_ACCESS_TOKEN: "" },
      code: 2,
      says: /could not find the job token: .*--token-file/,
    },
    {
      name: "a malformed token",
      env: { BUILDKITE_AGENT_ACCESS_TOKEN: "apiVersion: v1\nkind: Secret" },
      code: 2,
      says: /from env BUILDKITE_AGENT_ACCESS_TOKEN: .*not a Buildkite token; check that the Secret holds only the token/,
    },
    {
      name: "an unknown job",
      env: { BUILDKITE_JOB_ID: "00000000-0000-0000-0000-000000000000" },
      code: 1,
      says: /could not find job 00000000-.*check BUILDKITE_JOB_ID/,
    },
  ])("fails on $name, saying what to check, writing no env files", async (c) => {
    const p = await pod(c.env);
    const result = await runToEnd(["inject"], p.env);
    expect(result.code, result.stdout).toBe(c.code);
    expect(result.stdout + result.stderr).toMatch(c.says);
    expect(result.stdout + result.stderr).not.toContain("bkaj_not-the-job-token");
    await expect(stat(p.envDir)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses a job ID that is not a UUID, naming the env var, what it expects and what it got", async () => {
    const p = await pod({ BUILDKITE_JOB_ID: "job-42" });
    const result = await runToEnd(["inject"], p.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'jobId (env BUILDKITE_JOB_ID): expected a Buildkite job ID, a UUID such as 0190a7e2-5c3d-7f1e-9a2b-3c4d5e6f7a8b, got "job-42"',
    );
    expect(bk.requests.some((r) => r.path.includes("job-42"))).toBe(false);
  });

  it("names the endpoint's own flag and protocol when the API cannot be reached", async () => {
    const p = await pod();
    const args = ["inject", "--endpoint", "http://127.0.0.1:1/v3", "--verify-timeout", "300ms"];
    const result = await runToEnd(args, p.env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      "check the endpoint (flag --endpoint) and that the pod's network policy allows HTTP to it",
    );
    expect(result.stdout).not.toContain("HTTPS");
  });

  it.each([
    { name: "empty", content: "\n", says: /expected a non-empty secret in .*got an empty file/ },
    { name: "missing", content: undefined, says: /expected a readable secret file at .*ENOENT/ },
  ])("fails on a token file that is $name (exit 2)", async (c) => {
    const p = await pod();
    const { BUILDKITE_AGENT_ACCESS_TOKEN: _, ...env } = p.env;
    const secret = join(p.root, "token-secret");
    if (c.content !== undefined) await writeFile(secret, c.content);
    const result = await runToEnd(["inject", "--token-file", secret], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(c.says);
  });

  it("gives up on an endpoint that never answers, within the verify timeout", async () => {
    const stalledJob = randomUUID();
    bk.addJob({ id: stalledJob, buildId: bk.buildId });
    bk.inject({ kind: "stall", count: 1000, match: { path: `/v3/jobs/${stalledJob}` } });
    const p = await pod({ BUILDKITE_JOB_ID: stalledJob });
    const args = ["inject", "--request-timeout", "300ms", "--verify-timeout", "1s"];
    const result = await runToEnd(args, p.env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/no answer within 300ms.*gave up after \d+ attempts/);
  });

  it("stops cleanly on SIGTERM while waiting for the API, writing nothing", async () => {
    const stalledJob = randomUUID();
    bk.addJob({ id: stalledJob, buildId: bk.buildId });
    bk.inject({ kind: "stall", count: 1000, match: { path: `/v3/jobs/${stalledJob}` } });
    const p = await pod({ BUILDKITE_JOB_ID: stalledJob });
    const stalled = () => bk.requests.filter((r) => r.path === `/v3/jobs/${stalledJob}`).length;
    const before = stalled();
    const run = start(["inject", "--request-timeout", "60s"], p.env);
    // Wait until its request hangs in the fake, then stop it as the kubelet would.
    while (stalled() === before) {
      await new Promise((r) => setTimeout(r, 50));
    }
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(130);
    expect(run.stdout()).toContain("could not finish inject: stopped by a signal");
    await expect(stat(p.envDir)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("names the binary missing from the image", async () => {
    const p = await pod({ AGENT_INJECTOR_AGENT_BINARY: join(image, "missing-agent") });
    const result = await runToEnd(["inject"], p.env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`could not copy ${join(image, "missing-agent")}: no such file`);
  });

  it("refuses an agent whose bytes differ from the SHA256 the image recorded", async () => {
    const damaged = join(dir, "damaged-image");
    await mkdir(damaged);
    await writeFile(join(damaged, "buildkite-agent"), "not what was downloaded");
    await writeFile(join(damaged, "SHA256"), `${"0".repeat(64)}  buildkite-agent\n`);
    const p = await pod({ AGENT_INJECTOR_AGENT_BINARY: join(damaged, "buildkite-agent") });
    const result = await runToEnd(["inject"], p.env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("AGENT_INJECTOR_BINARY_CORRUPT");
  });

  it("copies extra binaries under their own or a given name", async () => {
    const p = await pod();
    const tool = join(image, "buildkite-agent");
    const args = [
      "inject",
      "--extra-binary",
      `${tool}:bk`,
      "--extra-binary",
      join(image, "VERSION"),
    ];
    const result = await runToEnd(args, p.env);
    expect(result.code, result.stdout).toBe(0);
    expect(summaryOf(result.stdout)).toMatchObject({ binaries: 3, copied: 3 });
    expect((await stat(join(p.bin, "bk"))).mode & 0o777).toBe(0o755);
    expect((await stat(join(p.bin, "VERSION"))).mode & 0o777).toBe(0o755);
  });

  it("never prints the token, not even with --print-config", async () => {
    const p = await pod();
    const result = await runToEnd(["inject", "--print-config"], p.env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("<secret from env BUILDKITE_AGENT_ACCESS_TOKEN>");
    expect(result.stdout).not.toContain(TOKEN);
  });
});
