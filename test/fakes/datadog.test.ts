import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeDatadog, startFakeDatadog } from "./datadog.ts";

// The fake is exercised with the platform's fetch, as any HTTP client would talk to it.
describe("fake datadog intake", () => {
  let dd: FakeDatadog;
  beforeAll(async () => {
    dd = await startFakeDatadog({ apiKey: "fake-key-0000" });
  });
  afterAll(() => dd.close());

  const post = (body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string> = {}) =>
    fetch(dd.url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", "dd-api-key": "fake-key-0000", ...headers },
    });
  const point = { timestamp: 1_767_225_600, value: 1 };

  it("accepts a gzip payload with 202 and keeps its series", async () => {
    const payload = { series: [{ metric: "a.b", type: 3, points: [point], tags: ["k:v"] }] };
    const gz = new Uint8Array(gzipSync(JSON.stringify(payload)));
    const res = await post(gz, { "content-encoding": "gzip" });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ errors: [] });
    expect(dd.series.at(-1)).toEqual(payload.series[0]);
  });

  it("refuses a wrong API key with 403", async () => {
    const res = await post("{}", { "dd-api-key": "nope" });
    expect(res.status).toBe(403);
  });

  it("refuses malformed series with 400 and the reason", async () => {
    const res = await post(
      JSON.stringify({
        series: [{ metric: "a", type: 3, points: [{ timestamp: 1.5, value: 1 }] }],
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: string[] }).errors[0]).toContain("integer seconds");
  });

  it("refuses a payload over 512000 bytes with 413", async () => {
    const res = await post("x".repeat(512_001));
    expect(res.status).toBe(413);
  });

  it("answers injected failures", async () => {
    dd.failNext(503);
    const res = await post(JSON.stringify({ series: [{ metric: "a", points: [point] }] }));
    expect(res.status).toBe(503);
    expect(
      (await post(JSON.stringify({ series: [{ metric: "a", points: [point] }] }))).status,
    ).toBe(202);
  });
});
