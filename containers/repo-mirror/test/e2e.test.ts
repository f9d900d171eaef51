import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, findBundles } from "../../../scripts/build.ts";
import { Daemon, Origin, removeDir, sh, tempDir } from "./helpers.ts";

const root = tempDir("e2e");
const daemon = new Daemon(root);
const cache = join(root, "cache");
const lifecycle = join(root, "lifecycle");
const marker = join(root, "pwned");
let bundle: string;
let url: string;
let tip: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  summary?: Record<string, unknown> & { summary: Record<string, unknown> };
}

/** Runs the bundle with Node 24 (vitest's own node) and parses its summary log line. */
function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: root, BUILDPOD_LIFECYCLE_DIR: lifecycle, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => {
      // Init commands log to stdout; tools (sync) keep stdout free and log to stderr.
      const lines = `${stdout}\n${stderr}`.split("\n").filter((l) => l.startsWith("{"));
      const summary = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "summary");
      resolve({ code: code ?? -1, stdout, stderr, summary });
    });
  });
}

beforeAll(async () => {
  const spec = findBundles().find((b) => b.name === "repo-mirror");
  if (!spec) throw new Error("repo-mirror has no src/main.ts");
  // Built beside the test's files, not into dist/: other tests run the real bundles meanwhile.
  const own = { ...spec, outfile: join(root, "bundle", "repo-mirror.mjs") };
  const built = await buildBundle(own, { version: "test" });
  expect(built.errors).toEqual([]);
  bundle = own.outfile;
  mkdirSync(lifecycle, { recursive: true });
  await daemon.start();
  const app = new Origin(root, "app");
  await app.commit({ "README.md": "e2e\n" });
  tip = await app.commits(3);
  url = daemon.url("app");
}, 60_000);

afterAll(async () => {
  await daemon.stop();
  removeDir(root);
});

describe("repo-mirror bundle", () => {
  it("syncs, then checks out from the Buildkite env with a cache hit", async () => {
    const s = await run(["sync", "--cache", cache, url]);
    expect(s.code).toBe(0);
    expect(s.summary?.summary).toMatchObject({
      repositories: 1,
      created: 1,
      failed: 0,
      mirrors: [{ url, action: "created", gc: false }],
    });

    const dest = join(root, "ws", "build");
    const c = await run(["--cache", cache, "--dest", dest], {
      BUILDKITE_REPO: url.replace(/\.git$/, ""),
      BUILDKITE_COMMIT: tip,
      BUILDKITE_BRANCH: "main",
    });
    expect(c.code).toBe(0);
    expect(c.summary?.summary).toMatchObject({
      cache: "hit",
      mode: "dissociate",
      commit: tip,
      origin_bytes: 0,
    });
    expect(sh(dest, "rev-parse", "HEAD")).toBe(tip);
    const status = JSON.parse(readFileSync(join(lifecycle, "status", "repo-mirror.json"), "utf8"));
    expect(status).toMatchObject({ command: "checkout", exit_code: 0, summary: { cache: "hit" } });
    expect(JSON.parse(readFileSync(`${dest}.checkout.json`, "utf8"))).toMatchObject({
      commit: tip,
    });
  });

  it("exits 1 naming the URL and the commit when neither cache nor origin has it", async () => {
    const ghost = "fedcba9876543210fedcba9876543210fedcba98";
    const r = await run([
      "checkout",
      "--repo",
      url,
      "--commit",
      ghost,
      "--ref",
      "main",
      "--cache",
      cache,
      "--dest",
      join(root, "ws", "ghost"),
    ]);
    expect(r.code).toBe(1);
    expect(r.summary?.summary).toMatchObject({ code: "REPO_MIRROR_UNKNOWN_COMMIT" });
    expect(String(r.summary?.summary.error)).toContain(ghost);
    expect(String(r.summary?.summary.error)).toContain(url);
  });

  const injections: Array<[string, string[]]> = [
    ["an option as the URL", ["--repo", `--upload-pack=touch ${marker}`]],
    ["an ext:: transport", ["--repo", `ext::sh -c touch% ${marker}`]],
    ["an option as the ref", ["--repo", "URL", "--ref", `--upload-pack=touch ${marker}`]],
    ["an option as the commit", ["--repo", "URL", "--commit", `--upload-pack=touch ${marker}`]],
  ];
  it.each(injections)("refuses %s with exit 2 before git runs", async (_, args) => {
    const r = await run([
      ...args.map((a) => (a === "URL" ? url : a)),
      "--cache",
      cache,
      "--dest",
      join(root, "ws", "inj"),
    ]);
    expect(r.code).toBe(2);
    expect(r.summary?.summary).toMatchObject({ code: "REPO_MIRROR_BAD_INPUT" });
    expect(String(r.summary?.summary.error)).toMatch(/^--(repo|ref|commit) /);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(root, "ws", "inj"))).toBe(false);
  });

  it("reports a bad commit and a bad ref at once, each named as it was given", async () => {
    const r = await run(
      [
        "checkout",
        "--repo",
        url,
        "--ref",
        "bad..ref",
        "--cache",
        cache,
        "--dest",
        join(root, "ws", "two"),
      ],
      { BUILDKITE_COMMIT: "zzzz" },
    );
    expect(r.code).toBe(2);
    const error = String(r.summary?.summary.error);
    expect(error).toMatch(/^BUILDKITE_COMMIT "zzzz" is not a commit/);
    expect(error).toContain('--ref "bad..ref"');
    expect(existsSync(join(root, "ws", "two"))).toBe(false);
  });

  it("exits 2 without a repository, saying how to give one", async () => {
    const r = await run(["checkout", "--cache", cache]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repo/i);
  });

  it("sync refuses an unsafe URL among good ones before touching any", async () => {
    const r = await run([
      "sync",
      "--cache",
      join(root, "cache2"),
      url,
      `ext::sh -c touch% ${marker}`,
    ]);
    expect(r.code).toBe(2);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(root, "cache2", "v1", "mirrors"))).toBe(false);
  });
});
