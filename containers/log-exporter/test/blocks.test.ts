// Line blocks (records kept as the file's bytes): their documents must be byte for byte the
// ones rendered from record objects, and the elasticsearch sink must split, retry and
// dead-letter them like records. Tested against the loopback `_bulk` fake.
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type FakeElasticsearch,
  startFakeElasticsearch,
} from "../../../test/fakes/elasticsearch.ts";
import { ByteWriter } from "../src/bytes.ts";
import { DocumentEncoder } from "../src/document.ts";
import { blockRecord, Flag, type LineBlock, recordId } from "../src/record.ts";
import { ElasticsearchSink } from "../src/sinks/elasticsearch.ts";
import { stdoutSink } from "../src/sinks/file.ts";
import { RecordBatch } from "../src/sinks/sink.ts";

const meta = {
  kubernetes: { namespace: "ci", podName: "p" },
  buildkite: { jobId: "j" },
  labels: { team: 'a"b' },
};

/** A block of `lines` (each a Buffer or text), as the file source makes them. */
function block(lines: (string | Buffer)[], flags: number[] = [], base = 1000): LineBlock {
  const parts = lines.map((l) => (typeof l === "string" ? Buffer.from(l, "utf8") : l));
  const starts = new Uint32Array(parts.length);
  const ends = new Uint32Array(parts.length);
  let at = 0;
  parts.forEach((p, i) => {
    starts[i] = at;
    ends[i] = at + p.length;
    at += p.length + 1;
  });
  return {
    origin: { path: "/logs/a.log", key: "k1" },
    time: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    base,
    data: Buffer.concat(parts.flatMap((p) => [p, Buffer.from("\n")])),
    count: parts.length,
    starts,
    ends,
    flags: Uint8Array.from(parts.map((_, i) => flags[i] ?? 0)),
  };
}

const controls = Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).join("");
const tricky = [
  "plain",
  "",
  "abc",
  'say "hi" \\ bye',
  `controls ${controls} end`,
  '\t\t"\\\\x',
  'grüße 漢字 🎉 with "quotes" in a line of some length',
  "line\r",
  "x".repeat(1001),
];

describe("line blocks", () => {
  it("render every line byte for byte as its record does", () => {
    const encoder = new DocumentEncoder(meta);
    const b = block(
      [...tricky, Buffer.from([0x61, 0xff, 0x22, 0x62]), "piece"],
      [...tricky.map(() => 0), Flag.REPLACED, Flag.SPLIT],
    );
    const w = new ByteWriter(16);
    for (let i = 0; i < b.count; i++) {
      w.reset();
      encoder.writeLine(w, b, i);
      const record = blockRecord(b, i);
      expect(w.bytes().toString("utf8")).toBe(encoder.text(record));
      expect(JSON.parse(w.bytes().toString("utf8")).message).toBe(record.message);
    }
    expect(blockRecord(b, tricky.length).message).toBe('a\uFFFD"b');
  });

  it.each([0, 35, 36, 999_999_999, 2 ** 31 - 1, 2 ** 31, 2 ** 40 + 7])(
    "write offset %d and its id as records do",
    (base) => {
      const w = new ByteWriter(16);
      const b = block(["x"], [], base);
      w.base36(base);
      w.ascii(" ");
      w.decimal(base);
      expect(w.bytes().toString()).toBe(`${base.toString(36)} ${base}`);
      w.reset();
      new DocumentEncoder(meta).writeLine(w, b, 0);
      expect(w.bytes().toString()).toBe(new DocumentEncoder(meta).text(blockRecord(b, 0)));
    },
  );

  it("go to a stream sink as JSON lines, mixed with record objects", async () => {
    let out = "";
    const stream = new Writable({
      write(chunk, _encoding, done) {
        out += chunk.toString();
        done();
      },
    });
    const sink = stdoutSink(meta, stream);
    const b = block(["one", 'two "2"']);
    const batch = new RecordBatch([b, [{ ...blockRecord(b, 0), message: "three" }]]);
    const result = await sink.send(batch, new AbortController().signal);
    expect(result).toEqual({ delivered: 3, rejected: [] });
    expect(out.split("\n").map((l) => (l ? JSON.parse(l).message : l))).toEqual([
      "one",
      'two "2"',
      "three",
      "",
    ]);
  });
});

describe("line blocks to elasticsearch", () => {
  let es: FakeElasticsearch;
  beforeAll(async () => {
    es = await startFakeElasticsearch();
  });
  afterAll(async () => {
    await es.close();
  });

  it("split into bodies under maxBulkBytes, only refused items retried or dead-lettered", async () => {
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} "${"x".repeat(i % 50)}"`);
    const b = block(lines);
    es.options.itemStatus = (item) => {
      const n = Number(String(item.source?.message).split(" ")[1]);
      if (n === 7) return 400;
      if (n % 10 === 3 && item.seen === 0) return 429;
      return undefined;
    };
    const bodies: number[] = [];
    es.options.requestStatus = ({ bytes }) => {
      bodies.push(bytes);
      return undefined;
    };
    const retries: number[] = [];
    const sink = new ElasticsearchSink(
      {
        nodes: [es.url],
        index: "blocks",
        maxBulkBytes: 8 * 1024,
        requestTimeoutMs: 10_000,
        retryMinMs: 10,
        retryMaxMs: 20,
      },
      meta,
      { retry: ({ records }) => retries.push(records) },
    );
    try {
      const result = await sink.send(new RecordBatch([b]), new AbortController().signal);
      expect(result.delivered).toBe(199);
      expect(result.rejected.map((r) => [r.record.message, r.status])).toEqual([[lines[7], 400]]);
      const docs = es.documents("blocks");
      expect(docs.size).toBe(199);
      const first = docs.get(recordId(blockRecord(b, 0)));
      expect(first).toMatchObject({ message: lines[0], log: { offset: 1000 } });
      // Every request stayed under the limit, and each retry carried only the 429 items.
      expect(bodies.length).toBeGreaterThan(5);
      expect(Math.max(...bodies)).toBeLessThanOrEqual(8 * 1024);
      expect(retries.reduce((a, n) => a + n, 0)).toBe(20);
    } finally {
      await sink.close();
    }
  });
});
