import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import {
  BuildkiteStore,
  BYTES_PER_COLLECTION,
  DirStore,
  digestHandle,
  KEEP_CONTENT_LIMIT,
  noteBuffers,
  openStore,
  parseStoreSpec,
  readRange,
  resolveToken,
  SINGLE_UPLOAD_LIMIT,
  STREAM_CHUNK,
  StoreError,
  splitRanges,
  storeFromConfig,
  storeOptions,
  type UploadSource,
} from "@buildpod/artifact-store";
import { ConfigError, loadConfig } from "@buildpod/config";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";

const fast = { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 };

function source(p: string, content: string | Buffer): UploadSource {
  const buf = Buffer.from(content);
  return {
    path: p,
    absolutePath: `/artifacts/${p}`,
    size: buf.length,
    sha1: createHash("sha1").update(buf).digest("hex"),
    sha256: createHash("sha256").update(buf).digest("hex"),
    contentType: "text/plain",
    read: (start, end) => Readable.from([buf.subarray(start, end)]),
  };
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

describe("buildkite store against the fake agent API", () => {
  let bk: FakeBuildkite;
  let store: BuildkiteStore;
  const retries: number[] = [];

  beforeAll(async () => {
    bk = await startFakeBuildkite({ multipartThreshold: 100, partSize: 40 });
    store = new BuildkiteStore({
      endpoint: bk.endpoint,
      token: bk.token,
      jobId: bk.jobId,
      retry: fast,
      timeoutMs: 1_000,
      onRetry: ({ attempt }) => retries.push(attempt),
    });
  });
  afterAll(async () => {
    await store.close();
    await bk.close();
  });
  afterEach(() => {
    retries.length = 0;
  });

  it("uploads odd names by form and finishes them", async () => {
    const names = ["a b/ü ñ.txt", "hash#1.txt", "per%cent.txt", "new\nline.txt", 'quote".txt'];
    const results = await store.uploadBatch(names.map((n) => source(n, `content of ${n}`)));
    expect(results.every((r) => r.ok)).toBe(true);
    for (const n of names) {
      const a = bk.finished().get(n);
      expect(a?.stored?.sha256).toBe(source(n, `content of ${n}`).sha256);
    }
  });

  it("sends a small file kept from hashing from memory, without reading it again", async () => {
    const kept = {
      ...source("kept.txt", "kept in memory"),
      content: Buffer.from("kept in memory"),
    };
    kept.read = () => {
      throw new Error("read() must not be called when the content is kept");
    };
    const [result] = await store.uploadBatch([kept]);
    expect(result?.ok).toBe(true);
    const a = bk.finished().get("kept.txt");
    expect((await bk.read(a as never)).toString()).toBe("kept in memory");
    expect(a?.stored?.sha256).toBe(kept.sha256);
  });

  it("uploads big files in parts with their ETags", async () => {
    const big = Buffer.alloc(250, 7);
    big.write("start");
    const [result] = await store.uploadBatch([source("big.bin", big)]);
    expect(result?.ok).toBe(true);
    const a = bk.finished().get("big.bin");
    expect(a?.multipart?.parts).toEqual([36, 36, 36, 36, 36, 35, 35]);
    expect(await bk.read(a as never)).toEqual(big);
  });

  it("retries 429, 5xx, dropped and stalled requests", async () => {
    bk.inject({ kind: "status", status: 429, match: { method: "POST", server: "api" } });
    bk.inject({ kind: "status", status: 502, match: { server: "storage" } });
    bk.inject({ kind: "drop", match: { method: "PUT", server: "api" } });
    bk.inject({ kind: "stall", match: { method: "PUT", server: "api" } });
    const [result] = await store.uploadBatch([source("retried.txt", "x")]);
    expect(result?.ok).toBe(true);
    expect(retries.length).toBeGreaterThanOrEqual(4);
  });

  it("reports other 4xx at once with the server's message and never the token", async () => {
    const bad = new BuildkiteStore({ endpoint: bk.endpoint, token: "wrong", jobId: bk.jobId });
    const [result] = await bad.uploadBatch([source("nope.txt", "x")]);
    await bad.close();
    expect(result?.ok).toBe(false);
    if (result?.ok) return;
    expect(result.retryable).toBe(false);
    expect(result.error.message).toMatch(/answered 401: invalid or missing job token/);
    expect(result.error.message).not.toContain(bk.token);
  });

  it("marks an expired presigned upload retryable and reports it as error", async () => {
    bk.presignTtlMs = -5_000;
    const [result] = await store.uploadBatch([source("late.txt", "x")]);
    bk.presignTtlMs = 60_000;
    expect(result?.ok).toBe(false);
    if (result?.ok) return;
    expect(result.retryable).toBe(true);
    expect(result.error.message).toMatch(/403/);
    expect(bk.artifacts.find((a) => a.path === "late.txt")?.state).toBe("error");
  });

  it("refuses files above the single-request limit when parts are not possible", async () => {
    const noParts = new BuildkiteStore({
      endpoint: bk.endpoint,
      token: bk.token,
      jobId: bk.jobId,
      multipart: false,
      singleUploadLimit: 3,
    });
    const [tooBig] = await noParts.uploadBatch([source("five.txt", "12345")]);
    await noParts.close();
    expect(tooBig?.ok).toBe(false);
    if (tooBig?.ok === false) {
      expect(tooBig.retryable).toBe(false);
      expect(tooBig.error.message).toMatch(/5 bytes, above the single-request limit of 3 bytes/);
    }
    // The program says how its users turn parts back on; the store cannot know its flags.
    const { store: hinted } = await storeFromConfig({
      endpoint: bk.endpoint,
      token: bk.token,
      jobId: bk.jobId,
      lifecycleDir: "/nonexistent",
      timeoutMs: 1_000,
      userAgent: "test",
      multipart: false,
      noMultipartHint: "give --parts to turn them back on, or split the file",
    });
    const huge = { ...source("huge.bin", ""), size: SINGLE_UPLOAD_LIMIT + 1 };
    const [refused] = await hinted.uploadBatch([huge]);
    await hinted.close();
    expect(refused?.ok === false && refused.error.message).toMatch(
      /and multipart uploads are turned off; give --parts to turn them back on, or split the file$/,
    );
    // Parts are on, but the server offers none for a file this small: still refused, clearly.
    const offered = new BuildkiteStore({
      endpoint: bk.endpoint,
      token: bk.token,
      jobId: bk.jobId,
      singleUploadLimit: 3,
    });
    const [noOffer] = await offered.uploadBatch([source("five-b.txt", "12345")]);
    await offered.close();
    expect(noOffer?.ok === false && noOffer.error.message).toMatch(
      /the server offered no multipart upload; split the file$/,
    );
    expect(bk.artifacts.find((a) => a.path === "five-b.txt")?.state).toBe("error");
  });

  it("searches with sorted parameters and downloads through the redirect", async () => {
    await bk.seedArtifact({ path: "dist/app.js", content: "console.log(1)" });
    const found = await store.search({ query: "dist/*.js", buildId: bk.buildId, scope: "build" });
    expect(found.map((a) => a.path)).toEqual(["dist/app.js"]);
    const search = bk.requests.findLast((r) => r.path.endsWith("/search"));
    expect(search?.authorization).toBe(true);
    expect(await text(await store.open(found[0] as never))).toBe("console.log(1)");
    const storageGets = bk.requests.filter((r) => r.server === "storage" && r.method === "GET");
    expect(storageGets.every((r) => !r.authorization)).toBe(true);
  });

  it("times out a stalled search and gives up after the attempts", async () => {
    bk.inject({ kind: "stall", count: 4, match: { path: /search$/ } });
    const err = await store.search({ query: "*", buildId: bk.buildId }).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.message).toMatch(/timed out/);
  });
});

describe("dir store and store selection", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "dir-store-"));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("copies files in and finds them by glob", async () => {
    const store = new DirStore({ root });
    const results = await store.uploadBatch([source("a/b c.txt", "one"), source("d.log", "two")]);
    expect(results.every((r) => r.ok)).toBe(true);
    const found = await store.search({ query: "**/*.txt", buildId: "" });
    expect(found.map((a) => a.path)).toEqual(["a/b c.txt"]);
    expect(await text(await store.open(found[0] as never))).toBe("one");
  });

  it("says so when the store's directory is missing", async () => {
    const missing = new DirStore({ root: path.join(root, "nope") });
    const err = await missing.search({ query: "*", buildId: "" }).catch((e: StoreError) => e);
    expect(err).toMatchObject({ code: "ARTIFACT_STORE_DIR_MISSING" });
    expect((err as Error).message).toMatch(/no such directory/);
  });

  it("parses store specs and refuses others", () => {
    expect(parseStoreSpec("buildkite")).toEqual({ kind: "buildkite" });
    expect(parseStoreSpec("dir:/x")).toEqual({ kind: "dir", root: "/x" });
    expect(() => parseStoreSpec("s3://b")).toThrow(/expected "buildkite" or "dir:PATH"/);
  });

  it("names the option and where it came from when --store is no store", () => {
    const load = (argv: string[], env: Record<string, string> = {}) =>
      loadConfig(storeOptions("go"), { argv, env, envPrefix: "T" });
    const problem = (argv: string[], env?: Record<string, string>) => {
      try {
        load(argv, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).message;
      }
      throw new Error("expected a ConfigError");
    };
    expect(problem(["--store", "s3:foo"])).toContain(
      'store (flag --store): expected "buildkite" or "dir:PATH", got "s3:foo"',
    );
    expect(problem([], { T_STORE: "dir:" })).toContain(
      'store (env T_STORE): expected "buildkite" or "dir:PATH", got "dir:"',
    );
    expect(load(["--store", "dir:/x"]).config.store).toBe("dir:/x");
    expect(load([], { T_STORE: "buildkite" }).config.store).toBe("buildkite");
  });

  it("finds the token in the value, the file, then the lifecycle dir", async () => {
    expect(await resolveToken({ token: " t1 ", lifecycleDir: root })).toBe("t1");
    expect(await resolveToken({ lifecycleDir: root })).toBeUndefined();
    const err = await resolveToken({ tokenFile: path.join(root, "nope"), lifecycleDir: root })
      .then(() => undefined)
      .catch((e: Error) => e);
    expect(err?.message).toMatch(/could not read the token file/);
    expect(() => openStore({ kind: "buildkite" }, {})).toThrow(/no job token/);
  });

  it("splits parts near-equally with the remainder first", () => {
    expect(splitRanges(10, 3)).toEqual([
      [0, 4],
      [4, 7],
      [7, 10],
    ]);
  });
});

describe("hashing and reading files", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "digest-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function digestOf(content: Buffer, keep: boolean) {
    const file = path.join(root, `f-${content.length}-${keep}`);
    await writeFile(file, content);
    const handle = await open(file, "r");
    try {
      return await digestHandle(handle, content.length, undefined, keep);
    } finally {
      await handle.close();
    }
  }

  it("keeps the bytes of a small file it hashed only when asked, and never of a large one", async () => {
    const small = randomBytes(10 * 1024);
    const kept = await digestOf(small, true);
    expect(kept.content).toEqual(small);
    expect(kept.sha256).toBe(createHash("sha256").update(small).digest("hex"));
    expect((await digestOf(small, false)).content).toBeUndefined();
    expect((await digestOf(Buffer.alloc(0), true)).content).toEqual(Buffer.alloc(0));

    const large = randomBytes(KEEP_CONTENT_LIMIT + 1);
    const digest = await digestOf(large, true);
    expect(digest.content).toBeUndefined();
    expect(digest.sha1).toBe(createHash("sha1").update(large).digest("hex"));
  });

  it("streams ranges in bounded chunks, and collects without touching the global", async () => {
    const content = randomBytes(3 * STREAM_CHUNK + 5);
    const file = path.join(root, "ranges");
    await writeFile(file, content);
    const handle = await open(file, "r");
    try {
      const chunks: Buffer[] = [];
      for await (const c of readRange(handle, 7, content.length - 3)) chunks.push(c as Buffer);
      expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(STREAM_CHUNK);
      expect(Buffer.concat(chunks)).toEqual(content.subarray(7, content.length - 3));
    } finally {
      await handle.close();
    }
    // Collections are started through a separate context: the process's global stays as it was.
    noteBuffers(BYTES_PER_COLLECTION);
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
