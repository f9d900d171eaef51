import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { IN_MEMORY_LIMIT, program, targetPath } from "@buildpod/artifact-downloader";
import { runInProcess } from "@buildpod/runtime/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type FakeBuildkite,
  startFakeBuildkite,
  startTokenEcho,
} from "../../../test/fakes/buildkite-agent-api.ts";

let bk: FakeBuildkite;
let work: string;
let dest: string;
let lifecycle: string;
let n = 0;

beforeAll(async () => {
  bk = await startFakeBuildkite();
  work = await mkdtemp(path.join(tmpdir(), "downloader-"));
});
afterAll(async () => {
  await bk.close();
  await rm(work, { recursive: true, force: true });
});
beforeEach(async () => {
  n++;
  dest = path.join(work, `dest-${n}`);
  lifecycle = path.join(work, `lifecycle-${n}`);
  await mkdir(lifecycle, { recursive: true });
});

/** The job env a Buildkite job would give the init container. */
function jobEnv(extra: Record<string, string> = {}) {
  return {
    BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
    BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
    BUILDKITE_BUILD_ID: bk.buildId,
    BUILDPOD_LIFECYCLE_DIR: lifecycle,
    ARTIFACT_DOWNLOADER_PROGRESS_INTERVAL: "100ms",
    ...extra,
  };
}

describe("artifact-downloader", () => {
  it("downloads every match of every query, keeping relative paths and odd names", async () => {
    const names = ["odd/a b.txt", "odd/ünï.txt", "odd/#1.txt", "odd/50%.txt", "odd/new\nline.txt"];
    for (const name of names) await bk.seedArtifact({ path: name, content: `is ${name}` });
    await bk.seedArtifact({ path: "other/skip.bin", content: "no" });

    const r = await runInProcess(program, ["--query", "odd/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(0);
    for (const name of names) {
      expect(await readFile(path.join(dest, name), "utf8")).toBe(`is ${name}`);
    }
    expect(existsSync(path.join(dest, "other"))).toBe(false);
    expect(r.summary.downloaded).toBe(names.length);
  });

  it("rides out the API, then the storage, being down for 30 s", async () => {
    for (let i = 0; i < 20; i++) {
      await bk.seedArtifact({ path: `outage/${i}.txt`, content: `file ${i}` });
    }
    const started = Date.now();
    bk.down(30_000, "api");
    // The search waits out the API; the storage then goes down just as the downloads begin.
    setTimeout(() => bk.down(30_000, "storage"), 29_000);
    const r = await runInProcess(program, ["--query", "outage/*", "--dest", dest], jobEnv());

    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(55_000);
    expect(r.summary.downloaded).toBe(20);
    for (let i = 0; i < 20; i++) {
      expect(await readFile(path.join(dest, `outage/${i}.txt`), "utf8")).toBe(`file ${i}`);
    }
    expect(r.lines.some((l) => l.msg === "request failed, retrying")).toBe(true);
  }, 150_000);

  it("refuses paths that climb out of the destination and writes nothing outside", async () => {
    const evil = ["../escape.txt", "/etc/abs.txt", "deep/../../up.txt", "..\\win.txt"];
    for (const p of evil) await bk.seedArtifact({ path: p, content: "evil" });
    await bk.seedArtifact({ path: "deep/fine.txt", content: "fine" });
    const queries = [...evil, "deep/*"].flatMap((q) => ["--query", q]);
    const r = await runInProcess(program, [...queries, "--dest", dest], jobEnv());
    expect(r.code).toBe(4);
    const refused = (r.summary.refused as { path: string }[]).map((x) => x.path).sort();
    expect(refused).toEqual(["../escape.txt", "..\\win.txt", "/etc/abs.txt", "deep/../../up.txt"]);
    expect(await readFile(path.join(dest, "deep/fine.txt"), "utf8")).toBe("fine");
    expect(existsSync(path.join(work, "escape.txt"))).toBe(false);
    expect(existsSync(path.join(work, "up.txt"))).toBe(false);
    expect(r.lines.some((l) => l.msg.startsWith("refused artifact path"))).toBe(true);
  });

  it("fails on a checksum mismatch and leaves neither file nor temp file", async () => {
    await bk.seedArtifact({ path: "sums/bad.txt", content: "real", sha256sum: "0".repeat(64) });
    const r = await runInProcess(program, ["--query", "sums/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(1);
    expect((r.summary.failed as { error: string }[])[0]?.error).toMatch(/sha256 is .* says 0+/);
    expect(await readdir(path.join(dest, "sums"))).toEqual([]);
  });

  it("checks small artifacts in memory and large ones while streaming, both ways", async () => {
    const large = randomBytes(IN_MEMORY_LIMIT + 1);
    await bk.seedArtifact({ path: "both/large.bin", content: large });
    await bk.seedArtifact({ path: "both/small.bin", content: "small" });
    await bk.seedArtifact({ path: "both/bad.bin", content: large, sha256sum: "1".repeat(64) });
    const r = await runInProcess(program, ["--query", "both/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(1);
    expect(await readFile(path.join(dest, "both/large.bin"))).toEqual(large);
    expect(await readFile(path.join(dest, "both/small.bin"), "utf8")).toBe("small");
    expect((r.summary.failed as { path: string }[]).map((f) => f.path)).toEqual(["both/bad.bin"]);
    expect((await readdir(path.join(dest, "both"))).sort()).toEqual(["large.bin", "small.bin"]);
  });

  it("fails a required query that matches nothing, naming the query and the build", async () => {
    const r = await runInProcess(
      program,
      ["--query", "nothing/*", "--required", "--dest", dest],
      jobEnv(),
    );
    expect(r.code).toBe(1);
    expect(String(r.summary.error)).toContain('"nothing/*"');
    expect(String(r.summary.error)).toContain(bk.buildId);

    const lenient = await runInProcess(program, ["--query", "nothing/*", "--dest", dest], jobEnv());
    expect(lenient.code).toBe(0);
  });

  it("names the dir: store, not an empty build, when nothing matches there", async () => {
    const store = path.join(work, `store-${n}`);
    await mkdir(store);
    const env = { BUILDPOD_LIFECYCLE_DIR: lifecycle };
    const args = ["--store", `dir:${store}`, "--query", "none/*", "--required", "--dest", dest];
    const r = await runInProcess(program, args, env);
    expect(r.code).toBe(1);
    expect(r.summary.error).toBe(
      `could not find artifacts matching "none/*" in dir:${store}; check the query and --step, ` +
        "or drop --required",
    );
    expect(r.summary).not.toHaveProperty("build");
  });

  it("refuses --required without a query as a config error, before any request", async () => {
    const before = bk.requests.length;
    const r = await runInProcess(program, ["--required", "--dest", dest], jobEnv());
    expect(r.code).toBe(2);
    expect(r.summary.error).toBe(
      "invalid configuration, 1 problem:\n  - required (flag --required): expected a query to " +
        "go with it, since nothing would be downloaded; give --query GLOB " +
        "(ARTIFACT_DOWNLOADER_QUERY, or query: in the config file), or drop --required",
    );
    const fromEnv = await runInProcess(program, ["--dest", dest], {
      ...jobEnv(),
      ARTIFACT_DOWNLOADER_REQUIRED: "true",
    });
    expect(fromEnv.code).toBe(2);
    expect(String(fromEnv.summary.error)).toContain("required (env ARTIFACT_DOWNLOADER_REQUIRED)");
    expect(bk.requests.length).toBe(before);
    expect(existsSync(dest)).toBe(false);
  });

  it("lists the queries in the summary also when none was given", async () => {
    const r = await runInProcess(program, ["--dest", dest], jobEnv());
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ queries: [], downloaded: 0 });
  });

  it("says why the embedded dir store was searched when a required query finds nothing", async () => {
    const embedded = path.join(lifecycle, "artifact-store");
    const why =
      `the dir store at ${embedded} was used because no Buildkite token or endpoint was ` +
      "given; set BUILDKITE_AGENT_ACCESS_TOKEN (or --token-file) and BUILDKITE_BUILD_ID to " +
      "download a build's artifacts, or give --store dir:PATH";
    const args = ["--query", "none/*", "--required", "--dest", dest];
    const missing = await runInProcess(program, args, { BUILDPOD_LIFECYCLE_DIR: lifecycle });
    expect(missing.code).toBe(1);
    expect(String(missing.summary.error)).toMatch(/no such directory/);
    expect(String(missing.summary.error)).toContain(why);

    await mkdir(embedded);
    const empty = await runInProcess(program, args, { BUILDPOD_LIFECYCLE_DIR: lifecycle });
    expect(empty.code).toBe(1);
    expect(empty.summary.error).toBe(
      `could not find artifacts matching "none/*" in dir:${embedded}; check the query and ` +
        `--step, or drop --required; ${why}`,
    );
  });

  it("shows in --print-config the store it takes when --store is left out", async () => {
    const local = await runInProcess(program, ["--print-config"], {
      BUILDPOD_LIFECYCLE_DIR: lifecycle,
    });
    expect(JSON.parse(local.text)).toMatchObject({
      store: `dir:${path.join(lifecycle, "artifact-store")}`,
    });
    const job = await runInProcess(program, ["--print-config"], jobEnv());
    expect(JSON.parse(job.text)).toMatchObject({ store: "buildkite", endpoint: bk.endpoint });
    expect(job.text).not.toContain(bk.token);
  });

  it("says that no build ID was given and how to give one", async () => {
    const env = { ...jobEnv(), BUILDKITE_BUILD_ID: undefined };
    const r = await runInProcess(program, ["--query", "x/*", "--dest", dest], env);
    expect(r.code).toBe(2);
    expect(r.summary.error).toBe(
      "could not search artifacts: no build ID was given; set --build ID or BUILDKITE_BUILD_ID " +
        "(a Buildkite job has it in its env), or use a dir: store",
    );
  });

  it("keeps the newest of two artifacts sharing a path, and logs it", async () => {
    const retried = bk.addJob({ id: `job-${n}`, buildId: bk.buildId, stepKey: "test" });
    await bk.seedArtifact({ path: "dup/x.txt", content: "old", createdAt: new Date(1_000) });
    await bk.seedArtifact({ path: "dup/x.txt", content: "new", jobId: retried.id });
    const r = await runInProcess(program, ["--query", "dup/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(0);
    expect(await readFile(path.join(dest, "dup/x.txt"), "utf8")).toBe("new");
    expect(r.lines.some((l) => l.msg.includes("the newest wins"))).toBe(true);
  });

  it("filters by step and retried jobs", async () => {
    const old = bk.addJob({ id: `old-${n}`, buildId: bk.buildId, stepKey: "lint", retried: true });
    const cur = bk.addJob({ id: `cur-${n}`, buildId: bk.buildId, stepKey: "lint" });
    await bk.seedArtifact({ path: "lint/old.txt", content: "o", jobId: old.id });
    await bk.seedArtifact({ path: "lint/cur.txt", content: "c", jobId: cur.id });
    const plain = await runInProcess(
      program,
      ["--query", "lint/*", "--step", "lint", "--dest", dest],
      jobEnv(),
    );
    expect(plain.summary.downloaded).toBe(1);
    const all = await runInProcess(
      program,
      ["--query", "lint/*", "--step", "lint", "--include-retried-jobs", "--dest", `${dest}-all`],
      jobEnv(),
    );
    expect(all.summary.downloaded).toBe(2);
  });

  it("rides out 429s, 5xxs and dropped connections", async () => {
    await bk.seedArtifact({ path: "flaky/f.txt", content: "flaky" });
    bk.inject({ kind: "status", status: 429, match: { path: /search$/ } });
    bk.inject({ kind: "status", status: 503, match: { path: /download$/ } });
    bk.inject({ kind: "drop", match: { server: "storage" } });
    const r = await runInProcess(program, ["--query", "flaky/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(0);
    expect(await readFile(path.join(dest, "flaky/f.txt"), "utf8")).toBe("flaky");
    expect(r.lines.filter((l) => l.msg === "request failed, retrying").length).toBe(3);
  });

  it("logs progress lines while a download takes long", async () => {
    await bk.seedArtifact({ path: "slow/s.bin", content: Buffer.alloc(1000, 1) });
    bk.inject({ kind: "stall", ms: 600, match: { server: "storage" } });
    const r = await runInProcess(program, ["--query", "slow/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(0);
    const progress = r.lines.filter((l) => l.msg === "download progress");
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toHaveProperty("mib_per_second");
    expect(r.summary.bytes).toBe(1000);
  });

  it("stops with a config error before any request when there is no token", async () => {
    const before = bk.requests.length;
    const r = await runInProcess(
      program,
      ["--store", "buildkite", "--query", "*", "--dest", dest],
      { ...jobEnv(), BUILDKITE_AGENT_ACCESS_TOKEN: undefined },
    );
    expect(r.code).toBe(2);
    expect(String(r.summary.error)).toMatch(/no job token/);
    expect(bk.requests.length).toBe(before);
    expect(existsSync(dest)).toBe(false);
  });

  it("reads the token the agent-injector wrote, and never logs it", async () => {
    await mkdir(path.join(lifecycle, "env"), { recursive: true });
    await writeFile(path.join(lifecycle, "env", "token"), `${bk.token}\n`);
    await bk.seedArtifact({ path: "tok/t.txt", content: "t" });
    const r = await runInProcess(program, ["--query", "tok/*", "--dest", dest], {
      ...jobEnv(),
      BUILDKITE_AGENT_ACCESS_TOKEN: undefined,
    });
    expect(r.code).toBe(0);
    expect(r.text).not.toContain(bk.token);
  });
});

describe("artifact-downloader, found, destination and token", () => {
  it("counts an artifact two queries match once, in the summary and the progress lines", async () => {
    await bk.seedArtifact({ path: "twice/a.txt", content: "a" });
    await bk.seedArtifact({ path: "twice/b.log", content: "b" });
    // A slow storage, so that progress lines come after the searches.
    bk.inject({ kind: "stall", ms: 400, count: 2, match: { server: "storage" } });
    const args = ["--query", "twice/*", "--query", "twice/*.txt", "--dest", dest];
    const r = await runInProcess(program, args, jobEnv());
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ found: 2, downloaded: 2 });
    const expected = r.lines
      .filter((l) => l.msg === "download progress")
      .map((l) => Number(l.expected));
    expect(Math.max(...expected)).toBe(2);
  });

  it("says the destination is not a directory, instead of an internal error", async () => {
    await bk.seedArtifact({ path: "dest/a.txt", content: "a" });
    await writeFile(dest, "a file where the destination should be");
    const r = await runInProcess(program, ["--query", "dest/*", "--dest", dest], jobEnv());
    expect(r.code).toBe(1);
    expect(r.summary.error).toBe(
      `could not create the destination ${dest}: it is not a directory; set --dest to a ` +
        "writable directory",
    );
  });

  it("scrubs a token read from the lifecycle dir even where a server echoes it", async () => {
    const token = "bkaj_from-the-lifecycle-dir";
    await mkdir(path.join(lifecycle, "env"), { recursive: true });
    await writeFile(path.join(lifecycle, "env", "token"), `${token}\n`);
    const echo = await startTokenEcho();
    try {
      const r = await runInProcess(program, ["--query", "x/*", "--dest", dest], {
        ...jobEnv(),
        BUILDKITE_AGENT_ENDPOINT: echo.endpoint,
        BUILDKITE_AGENT_ACCESS_TOKEN: undefined,
      });
      expect(r.code).toBe(1);
      expect(String(r.summary.error)).toContain("is not valid");
      expect(r.text).not.toContain(token);
    } finally {
      await echo.close();
    }
  });
});

describe("targetPath", () => {
  const cases: [string, string | RegExp][] = [
    ["a/b.txt", "a/b.txt"],
    ["./a//b.txt", "a/b.txt"],
    ["a\\b.txt", "a/b.txt"],
    ["../x", /climbs/],
    ["a/../../x", /climbs/],
    ["/etc/passwd", /absolute/],
    ["C:/x", /absolute/],
    ["", /names no file/],
    ["a\0b", /NUL/],
  ];
  it.each(cases)("%j", (input, want) => {
    const t = targetPath("/dest", input);
    if (typeof want === "string") expect(t).toMatchObject({ ok: true, relative: want });
    else expect(t.ok ? "" : t.why).toMatch(want);
  });
});
