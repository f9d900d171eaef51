import { createSocket } from "node:dgram";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DatadogApiSink,
  DatadogForwarder,
  DogStatsdSink,
  parseExposition,
  toDatadog,
} from "@buildpod/metrics-exporter";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeDatadog, startFakeDatadog } from "../../../test/fakes/datadog.ts";
import { CountTracker } from "../src/datadog.ts";
import { tempDir } from "./fixtures.ts";
import { testExporter } from "./helpers.ts";

const families = (text: string) => {
  const r = parseExposition(text, "t.prom");
  expect(r.problems).toEqual([]);
  return r.families;
};

const SAMPLE = [
  "# TYPE tests_total counter",
  'tests_total{result="passed",suite="a|b,c"} 10',
  "# TYPE temperature gauge",
  'temperature{room=""} 21.5',
  "plain_untyped 4",
  "# TYPE latency_seconds histogram",
  'latency_seconds_bucket{le="0.5"} 2',
  'latency_seconds_bucket{le="+Inf"} 3',
  "latency_seconds_sum 1.25",
  "latency_seconds_count 3",
  "# TYPE rpc summary",
  'rpc{quantile="0.9"} 0.7',
  "rpc_sum 5",
  "rpc_count 9",
  "not_a_number NaN",
  "",
].join("\n");

describe("the Datadog mapping", () => {
  it("maps each type the way the OpenMetrics check names them, with sanitised tags", () => {
    const mapped = toDatadog(families(SAMPLE), { namespace: "ci", tags: ["pipeline:app"] });
    const show = (p: { metric: string; kind: string; value: number; tags: string[] }) =>
      `${p.kind} ${p.metric} ${p.value} [${p.tags.join(" ")}]`;
    expect(mapped.points.map(show)).toEqual([
      "gauge ci.temperature 21.5 [pipeline:app]",
      "gauge ci.plain_untyped 4 [pipeline:app]",
      "gauge ci.rpc.quantile 0.7 [quantile:0.9 pipeline:app]",
    ]);
    expect(mapped.cumulative.map(show)).toEqual([
      "count ci.tests.count 10 [result:passed suite:a_b_c pipeline:app]",
      "count ci.latency_seconds.bucket 2 [upper_bound:0.5 pipeline:app]",
      "count ci.latency_seconds.sum 1.25 [pipeline:app]",
      "count ci.latency_seconds.count 3 [pipeline:app]",
      "count ci.rpc.sum 5 [pipeline:app]",
      "count ci.rpc.count 9 [pipeline:app]",
    ]);
    expect(mapped.skipped).toEqual([
      { metric: "not_a_number", reason: "Datadog cannot store the value NaN" },
    ]);
  });

  it("sends counts as increases since the last delivered total", () => {
    const tracker = new CountTracker();
    const at = (v: number) =>
      toDatadog(families(`# TYPE c_total counter\nc_total ${v}\n`), { namespace: "", tags: [] })
        .cumulative;
    const first = tracker.increases(at(5));
    expect(first.map((p) => p.value)).toEqual([5]);
    // Not committed (undelivered): the next increase still counts from zero.
    expect(tracker.increases(at(7)).map((p) => p.value)).toEqual([7]);
    tracker.commit(tracker.increases(at(7)));
    expect(tracker.increases(at(7))).toEqual([]);
    expect(tracker.increases(at(12)).map((p) => p.value)).toEqual([5]);
    // A total that went down was reset: it counts from zero again.
    expect(tracker.increases(at(2)).map((p) => p.value)).toEqual([2]);
  });
});

describe("DogStatsD over UDP", () => {
  it("sends gauges and counts as datagrams within the UDP packet size", async () => {
    const socket = createSocket("udp4");
    const datagrams: string[] = [];
    socket.on("message", (m) => datagrams.push(m.toString()));
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
    const errors: Error[] = [];
    const sink = new DogStatsdSink({
      host: "127.0.0.1",
      port: socket.address().port,
      onError: (e) => errors.push(e),
    });
    try {
      const forwarder = new DatadogForwarder(sink, {
        mapping: { namespace: "", tags: ["step:build"] },
        intervalMs: 0,
        debounceMs: 10,
      });
      forwarder.update(families(SAMPLE));
      expect(await forwarder.drain(AbortSignal.timeout(10_000))).toBe(true);
      await forwarder.close();
      const deadline = Date.now() + 10_000;
      while (datagrams.join("\n").split("\n").length < 9 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const lines = datagrams.flatMap((d) => d.split("\n"));
      expect(lines).toContain("temperature:21.5|g|#step:build");
      expect(lines).toContain("tests.count:10|c|#result:passed,suite:a_b_c,step:build");
      expect(lines).toContain("latency_seconds.bucket:2|c|#upper_bound:0.5,step:build");
      expect(lines).toContain("rpc.quantile:0.7|g|#quantile:0.9,step:build");
      expect(lines).toHaveLength(9);
      for (const d of datagrams) expect(Buffer.byteLength(d)).toBeLessThanOrEqual(1432);
      expect(errors).toEqual([]);
    } finally {
      socket.close();
    }
  });
});

describe("the HTTP API v2 against a loopback intake", () => {
  let intake: FakeDatadog;
  beforeAll(async () => {
    intake = await startFakeDatadog({ apiKey: "test-api-key-1234" });
  });
  afterAll(() => intake.close());

  it("splits large sends into gzip payloads within the documented limits", async () => {
    const lines = ["# TYPE big gauge"];
    const pad = "x".repeat(120);
    for (let i = 0; i < 30_000; i++) lines.push(`big{i="${i}",pad="${pad}"} ${i}`);
    const sink = new DatadogApiSink({
      url: intake.url,
      apiKey: "test-api-key-1234",
      timeoutMs: 10_000,
    });
    const before = intake.series.length;
    try {
      const mapped = toDatadog(families(`${lines.join("\n")}\n`), { namespace: "", tags: [] });
      const result = await sink.send(mapped.points, AbortSignal.timeout(60_000));
      expect(result).toMatchObject({ sent: 30_000, rejected: 0, failed: 0 });
      expect(result.requests).toBeGreaterThan(1);
      const recent = intake.requests.slice(-result.requests);
      for (const r of recent) {
        expect(r.status).toBe(202);
        expect(r.encoding).toBe("gzip");
        expect(r.bytes).toBeLessThanOrEqual(512_000);
        expect(r.decompressedBytes).toBeLessThan(5_242_880);
      }
      expect(intake.series.length - before).toBe(30_000);
      expect(intake.series.at(-1)).toMatchObject({
        metric: "big",
        type: 3,
        tags: ["i:29999", `pad:${pad}`],
      });
    } finally {
      await sink.close();
    }
  }, 120_000);

  it("retries a 503 at the drain without counting an increase twice", async () => {
    const sink = new DatadogApiSink({
      url: intake.url,
      apiKey: "test-api-key-1234",
      timeoutMs: 10_000,
    });
    const forwarder = new DatadogForwarder(sink, {
      mapping: { namespace: "retry", tags: [] },
      intervalMs: 0,
      debounceMs: 10_000,
    });
    const start = intake.series.length;
    try {
      intake.failNext(503, 2);
      forwarder.update(families("# TYPE jobs_total counter\njobs_total 4\n"));
      expect(await forwarder.drain(AbortSignal.timeout(20_000), 50)).toBe(true);
      const got = intake.series.slice(start).filter((s) => s.metric === "retry.jobs.count");
      expect(got.map((s) => [s.type, s.points[0]?.value])).toEqual([[1, 4]]);
      expect(forwarder.totals.failed).toBe(2);
    } finally {
      await forwarder.close();
    }
  });

  it("treats a refused API key as final", async () => {
    const sink = new DatadogApiSink({ url: intake.url, apiKey: "wrong-key", timeoutMs: 10_000 });
    try {
      const mapped = toDatadog(families("g 1\n"), { namespace: "", tags: [] });
      const result = await sink.send(mapped.points, AbortSignal.timeout(10_000));
      expect(result).toMatchObject({ sent: 0, rejected: 1, failed: 0 });
      expect(result.rejectReason).toContain("403");
    } finally {
      await sink.close();
    }
  });

  it("the exporter's datadog output sends the files with the job context at the drain", async () => {
    const root = await tempDir("datadog");
    const sink = new DatadogApiSink({
      url: intake.url,
      apiKey: "test-api-key-1234",
      timeoutMs: 10_000,
    });
    const { exporter } = await testExporter(root, {
      datadog: { sink, mapping: { namespace: "job", tags: ["pipeline:my-app"] }, intervalMs: 0 },
    });
    const start = intake.series.length;
    try {
      await writeFile(
        join(root, "datadog", "build.prom"),
        '# TYPE build_ok gauge\nbuild_ok{os="linux"} 1\n',
      );
      await exporter.start();
      const outcome = await exporter.drain(AbortSignal.timeout(20_000));
      expect(outcome.exitCode).toBe(0);
      const got = intake.series.slice(start).find((s) => s.metric === "job.build_ok");
      expect(got).toMatchObject({ type: 3, tags: ["os:linux", "pipeline:my-app"] });
      expect(got?.points[0]?.value).toBe(1);
    } finally {
      await exporter.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
