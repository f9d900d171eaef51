import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBuildkite, startFakeBuildkite } from "./buildkite-agent-api.ts";

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are read loosely in this test
type Json = any;
const PLACEHOLDER = ["$", "{artifact:path}"].join("");

// The fake is exercised with the platform's fetch, as any HTTP client would talk to it.
describe("fake buildkite agent api", () => {
  let bk: FakeBuildkite;
  const auth = () => ({ authorization: `Token ${bk.token}`, "content-type": "application/json" });

  beforeAll(async () => {
    bk = await startFakeBuildkite({ multipartThreshold: 10, partSize: 4 });
  });
  afterAll(() => bk.close());

  it("refuses a wrong token with a JSON message", async () => {
    const res = await fetch(`${bk.endpoint}/jobs/${bk.jobId}`, {
      headers: { authorization: "Token nope" },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { message: string }).message).toMatch(/token/);
  });

  it("reports the job state a test sets", async () => {
    const state = async () =>
      ((await (await fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() })).json()) as Json)
        .state;
    expect(await state()).toBe("running");
    bk.setJobState(bk.jobId, "canceling");
    expect(await state()).toBe("canceling");
    bk.setJobState(bk.jobId, "running");
    const missing = await fetch(`${bk.endpoint}/jobs/nope`, { headers: auth() });
    expect(missing.status).toBe(404);
  });

  it("injects statuses, stalls and dropped connections", async () => {
    bk.inject({ kind: "status", status: 429, retryAfter: 2, match: { server: "api" } });
    bk.inject({ kind: "drop", match: { server: "api" } });
    const first = await fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() });
    expect(first.status).toBe(429);
    expect(first.headers.get("retry-after")).toBe("2");
    await expect(fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() })).rejects.toThrow();

    bk.inject({ kind: "stall", match: { server: "api" } });
    const stalled = fetch(`${bk.endpoint}/jobs/${bk.jobId}`, {
      headers: auth(),
      signal: AbortSignal.timeout(300),
    });
    await expect(stalled).rejects.toThrow();
    const after = await fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() });
    expect(after.status).toBe(200);
  });

  it("uploads by form and by parts, then searches and downloads", async () => {
    const small = Buffer.from("hello");
    const big = Buffer.from("0123456789abcdefghij"); // 20 bytes: 5 parts of 4
    const sums = (b: Buffer) => ({
      sha1sum: createHash("sha1").update(b).digest("hex"),
      sha256sum: createHash("sha256").update(b).digest("hex"),
    });
    const create = await fetch(`${bk.endpoint}/jobs/${bk.jobId}/artifacts`, {
      method: "POST",
      headers: auth(),
      body: JSON.stringify({
        id: "batch-1",
        multipart_supported: true,
        artifacts: [
          { path: "a dir/small #1.txt", file_size: small.length, ...sums(small) },
          { path: "big.bin", file_size: big.length, ...sums(big) },
        ],
      }),
    });
    expect(create.status).toBe(201);
    const batch = (await create.json()) as Json;
    const [smallId, bigId] = batch.artifact_ids;

    // form upload: every data field, ${artifact:path} substituted, the file last
    const tpl = batch.upload_instructions;
    const form = new FormData();
    for (const [k, v] of Object.entries(tpl.data as Record<string, string>)) {
      form.append(k, v.replaceAll(PLACEHOLDER, "a dir/small #1.txt"));
    }
    form.append(tpl.action.file_input, new Blob([small]), "a dir/small #1.txt");
    const url = new URL(tpl.action.url);
    url.pathname = tpl.action.path;
    expect((await fetch(url, { method: tpl.action.method, body: form })).status).toBe(204);

    // multipart: one PUT per part, ETags echoed back in the state update
    const actions = batch.per_artifact_instructions[bigId].actions;
    expect(actions).toHaveLength(5);
    const etags = [];
    for (const [i, action] of actions.entries()) {
      const res = await fetch(action.url, {
        method: action.method,
        body: big.subarray(i * 4, i * 4 + 4),
      });
      expect(res.status).toBe(200);
      etags.push({ part_number: action.part_number, etag: res.headers.get("etag") });
    }
    const update = await fetch(`${bk.endpoint}/jobs/${bk.jobId}/artifacts`, {
      method: "PUT",
      headers: auth(),
      body: JSON.stringify({
        artifacts: [
          { id: smallId, state: "finished" },
          { id: bigId, state: "finished", multipart: true, multipart_etags: etags },
        ],
      }),
    });
    expect(update.status).toBe(200);
    expect(bk.finished().get("big.bin")?.stored?.sha256).toBe(sums(big).sha256sum);

    const search = await fetch(
      `${bk.endpoint}/builds/${bk.buildId}/artifacts/search?query=*.bin&scope=build&state=finished`,
      { headers: auth() },
    );
    const found = (await search.json()) as Json;
    expect(found.map((a: { path: string }) => a.path)).toEqual(["big.bin"]);
    const download = await fetch(found[0].url);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(big);
    expect(download.redirected).toBe(true);
  });

  it("expires presigned urls and rejects auth headers on storage", async () => {
    const a = await bk.seedArtifact({ path: "x.txt", content: "x" });
    const res = await fetch(`${bk.endpoint}/artifacts/${a.id}/download`, { redirect: "manual" });
    const location = res.headers.get("location") as string;
    const withAuth = await fetch(location, { headers: { authorization: `Token ${bk.token}` } });
    expect(withAuth.status).toBe(400);
    bk.presignTtlMs = -2000;
    const stale = await fetch(`${bk.endpoint}/artifacts/${a.id}/download`);
    expect(stale.status).toBe(403);
    bk.presignTtlMs = 60_000;
  });

  it("drops every connection while down", async () => {
    bk.down(500, "api");
    await expect(fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() })).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 700));
    expect((await fetch(`${bk.endpoint}/jobs/${bk.jobId}`, { headers: auth() })).status).toBe(200);
  });
});
