// The fake _bulk server, exercised over plain HTTP as Elasticsearch would be.
import { afterEach, describe, expect, it } from "vitest";
import { type FakeElasticsearch, startFakeElasticsearch } from "./elasticsearch.ts";

let es: FakeElasticsearch | undefined;
afterEach(async () => {
  await es?.close();
  es = undefined;
});

interface BulkAnswer {
  errors: boolean;
  items: Record<string, { status: number; error?: { type: string } }>[];
}

/** The status of item `i` (every item here is a `create`). */
const statusOf = (answer: BulkAnswer) => answer.items.map((i) => i.create?.status);

async function bulk(url: string, body: string) {
  const res = await fetch(`${url}/_bulk`, {
    method: "POST",
    headers: { "content-type": "application/x-ndjson" },
    body,
  });
  return {
    status: res.status,
    product: res.headers.get("x-elastic-product"),
    json: (await res.json()) as BulkAnswer,
  };
}

describe("fake elasticsearch", () => {
  it("answers per-item statuses in request order, 409 for an existing id on create", async () => {
    es = await startFakeElasticsearch({
      itemStatus: (i) => (i.id === "c" ? 429 : i.id === "d" ? 400 : undefined),
    });
    await bulk(es.url, '{"create":{"_index":"i","_id":"a"}}\n{"m":1}\n');
    const body = ["a", "b", "c", "d"]
      .map((id) => `{"create":{"_index":"i","_id":"${id}"}}\n{"m":"${id}"}\n`)
      .join("");
    const res = await bulk(es.url, body);
    expect(res.status).toBe(200);
    expect(res.product).toBe("Elasticsearch");
    expect(res.json.errors).toBe(true);
    expect(statusOf(res.json)).toEqual([409, 201, 429, 400]);
    expect(res.json.items[0]?.create?.error?.type).toBe("version_conflict_engine_exception");
    expect([...es.documents("i").keys()].sort()).toEqual(["a", "b"]);
  });

  it("refuses a body without the final newline and can fail whole requests", async () => {
    es = await startFakeElasticsearch();
    const res = await bulk(es.url, '{"create":{"_index":"i","_id":"a"}}\n{"m":1}');
    expect(res.status).toBe(400);
    es.options.requestStatus = () => 503;
    expect((await bulk(es.url, '{"index":{"_index":"i"}}\n{"m":1}\n')).status).toBe(503);
    expect(es.documents("i").size).toBe(0);
  });

  it("takes the index from the path and reports unparsable sources as 400 items", async () => {
    es = await startFakeElasticsearch();
    const res = await fetch(`${es.url}/logs-x/_bulk`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"create":{"_id":"1"}}\n{"ok":true}\n{"create":{"_id":"2"}}\n{not json}\n',
    });
    const json = (await res.json()) as BulkAnswer;
    expect(statusOf(json)).toEqual([201, 400]);
    expect(es.documents("logs-x").get("1")).toEqual({ ok: true });
  });
});
