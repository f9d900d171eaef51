// End-to-end: the exporter as a child process against the fake `_bulk` server.
import { appendFileSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FakeElasticsearch,
  startFakeElasticsearch,
} from "../../../test/fakes/elasticsearch.ts";
import {
  baseArgs,
  finishWorkload,
  sinksFile,
  startExporter,
  waitFor,
  workspace,
} from "./helpers.ts";

const fakes: FakeElasticsearch[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake.close();
});

type Doc = { message: string; log: { offset: number; flags?: string[]; file: { path: string } } };

function docs(fake: FakeElasticsearch): Doc[] {
  return [...fake.documents("logs").values()] as unknown as Doc[];
}

async function setup(opts: Parameters<typeof startFakeElasticsearch>[0] = {}) {
  const es = await startFakeElasticsearch(opts);
  fakes.push(es);
  const ws = workspace();
  const sinks = sinksFile(ws.dir, { type: "elasticsearch", nodes: [es.url], index: "logs" });
  return { es, ws, args: baseArgs(ws, sinks) };
}

describe("log-exporter with elasticsearch", () => {
  it("delivers every line of every file once, with the record fields", async () => {
    const { es, ws, args } = await setup();
    writeFileSync(join(ws.logs, "build.log"), "compiling\nlinking\n");
    const run = startExporter([...args, "--label", "team=ci"], {
      BUILDKITE_BUILD_ID: "b-1",
      BUILDKITE_PIPELINE_SLUG: "web",
    });
    await waitFor(() => es.documents("logs").size === 2, "the first two lines");
    appendFileSync(join(ws.logs, "build.log"), "done without newline");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const all = docs(es)
      .map((d) => d.message)
      .sort();
    expect(all).toEqual(["compiling", "done without newline", "linking"]);
    const first = [...es.documents("logs").values()][0] as Record<string, unknown>;
    expect(first).toMatchObject({
      message: "compiling",
      log: { offset: 0, file: { path: join(ws.logs, "build.log") } },
      buildkite: { job_id: "job-1", build_id: "b-1", pipeline: "web" },
      labels: { team: "ci" },
    });
    expect(typeof first["@timestamp"]).toBe("string");
    expect(run.summary()).toMatchObject({ delivered: 3, undelivered: 0, dead_lettered: 0 });
  });

  it("retries only the items answered 429", async () => {
    // Every other item is refused once with 429; the rest are stored at the first try.
    let n = 0;
    const { es, ws, args } = await setup({
      itemStatus: (item) => (item.seen === 0 && n++ % 2 === 1 ? 429 : undefined),
    });
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i}`);
    writeFileSync(join(ws.logs, "a.log"), `${lines.join("\n")}\n`);
    const run = startExporter(args);
    await waitFor(() => es.documents("logs").size === 40, "all 40 lines");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const attempts = [...es.attempts.values()];
    expect(attempts.filter((a) => a === 2)).toHaveLength(20);
    expect(attempts.filter((a) => a === 1)).toHaveLength(20);
    // The retry requests carried only the refused items.
    expect(es.requests.slice(1).every((r) => r.items <= 20)).toBe(true);
    expect(
      docs(es)
        .map((d) => d.message)
        .sort(),
    ).toEqual([...lines].sort());
  });

  it("loses and duplicates nothing across a sink outage and a SIGKILL", async () => {
    const { es, ws, args } = await setup({ requestStatus: () => 503 });
    const first = startExporter(args);
    const lines = Array.from({ length: 100 }, (_, i) => `request ${i} handled`);
    for (let i = 0; i < 100; i += 10)
      appendFileSync(join(ws.logs, "app.log"), `${lines.slice(i, i + 10).join("\n")}\n`);
    await waitFor(() => es.requests.length >= 2, "the exporter to try the sink");
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    expect(es.documents("logs").size).toBe(0);

    es.options.requestStatus = undefined; // the sink heals
    const second = startExporter(args);
    await waitFor(() => es.documents("logs").size === 100, "all 100 lines");
    finishWorkload(ws.lifecycle);
    expect(await second.exited).toBe(0);

    const messages = docs(es).map((d) => d.message);
    expect(new Set(messages).size).toBe(100);
    expect(messages.sort()).toEqual([...lines].sort());
  });

  it("writes items refused with 400 to the dead-letter file and exits 4", async () => {
    const { es, ws, args } = await setup({
      itemStatus: (item) => (String(item.source?.message).includes("bad") ? 400 : undefined),
    });
    writeFileSync(join(ws.logs, "a.log"), "good 1\nbad mapping\ngood 2\n");
    const run = startExporter(args);
    await waitFor(() => es.documents("logs").size === 2, "the two good lines");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(4);

    const dead = readFileSync(join(ws.state, "dead-letter.ndjson"), "utf8").trim().split("\n");
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0] as string)).toMatchObject({
      message: "bad mapping",
      status: 400,
      sink: "main",
      sink_type: "elasticsearch",
    });
    expect(run.summary()).toMatchObject({ delivered: 2, dead_lettered: 1 });
    // A 400 is never retried.
    expect(Math.max(...es.attempts.values())).toBe(1);
  });

  it("exits 3 with the undelivered count when the sink stays down past the drain deadline", async () => {
    const { ws, args } = await setup({ requestStatus: () => 503 });
    writeFileSync(join(ws.logs, "a.log"), "one\ntwo\nthree\n");
    const run = startExporter([...args, "--drain-timeout", "2s"]);
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(3);
    expect(run.summary()).toMatchObject({ delivered: 0, undelivered: 3 });
  });

  it("delivers a 5 MB line in flagged pieces (or whole) and flags invalid UTF-8", async () => {
    const { es, ws, args } = await setup();
    const big = "x".repeat(5 * 1024 * 1024);
    writeFileSync(join(ws.logs, "big.log"), `${big}\n`);
    writeFileSync(
      join(ws.logs, "bin.log"),
      Buffer.concat([Buffer.from("caf"), Buffer.from([0xc3, 0x28]), Buffer.from(" ok\n")]),
    );
    const run = startExporter(args);
    // The default --max-line-bytes is 1 MiB: five pieces, each flagged, nothing lost.
    await waitFor(() => es.documents("logs").size === 6, "the pieces and the other line");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const pieces = docs(es)
      .filter((d) => d.log.file.path === join(ws.logs, "big.log"))
      .sort((a, b) => a.log.offset - b.log.offset);
    expect(pieces).toHaveLength(5);
    expect(pieces.every((p) => p.log.flags?.includes("split"))).toBe(true);
    expect(pieces.map((p) => p.message).join("")).toBe(big);
    const bin = docs(es).find((d) => d.log.file.path === join(ws.logs, "bin.log"));
    expect(bin?.message).toBe("caf\uFFFD( ok");
    expect(bin?.log.flags).toEqual(["replaced_bytes"]);

    // With a larger limit the same line arrives whole.
    const whole = await setup();
    writeFileSync(join(whole.ws.logs, "big.log"), `${big}\n`);
    const second = startExporter([...whole.args, "--max-line-bytes", "8MiB"]);
    await waitFor(() => whole.es.documents("logs").size === 1, "the whole line");
    finishWorkload(whole.ws.lifecycle);
    expect(await second.exited).toBe(0);
    expect(docs(whole.es)[0]?.message).toBe(big);
  });

  it("delivers both contents of a file truncated and rewritten between two reads", async () => {
    const { es, ws, args } = await setup();
    const file = join(ws.logs, "rewritten.log");
    writeFileSync(file, "old 1\nold 2\n");
    const run = startExporter(args);
    await waitFor(() => es.documents("logs").size === 2, "the old content");
    truncateSync(file, 0);
    writeFileSync(file, "new A\n");
    await waitFor(() => es.documents("logs").size === 3, "the new content");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);
    expect(
      docs(es)
        .map((d) => d.message)
        .sort(),
    ).toEqual(["new A", "old 1", "old 2"]);
  });

  it("sends a stack trace written just before SIGTERM as one record", async () => {
    const { es, ws, args } = await setup();
    const run = startExporter([...args, "--multiline-start", "^\\S"]);
    await waitFor(() => run.stdout().includes("exporting logs"), "the exporter to start");
    const trace = ["Error: boom", "    at f (a.js:1:1)", "    at g (b.js:2:2)"];
    writeFileSync(join(ws.logs, "test.log"), `starting\n${trace.join("\n")}\n`);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);

    const messages = docs(es).map((d) => d.message);
    expect(messages.sort()).toEqual([trace.join("\n"), "starting"].sort());
    const joined = docs(es).find((d) => d.message.startsWith("Error"));
    expect(joined?.log.flags).toEqual(["multiline"]);
  });

  it("picks up one line in one of 400 empty files", async () => {
    const { es, ws, args } = await setup();
    for (let i = 0; i < 400; i++) writeFileSync(join(ws.logs, `empty-${i}.log`), "");
    const run = startExporter(args);
    await waitFor(() => run.stdout().includes("exporting logs"), "the exporter to start");
    appendFileSync(join(ws.logs, "empty-217.log"), "the only line\n");
    await waitFor(() => es.documents("logs").size === 1, "the line");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);
    expect(docs(es)[0]).toMatchObject({ message: "the only line", log: { offset: 0 } });
    expect(es.documents("logs").size).toBe(1);
  });

  it("sends basic auth read from the password file and never prints the password", async () => {
    const es = await startFakeElasticsearch();
    fakes.push(es);
    const ws = workspace();
    writeFileSync(join(ws.dir, "password"), "pa55-w0rd\n");
    const sinks = sinksFile(ws.dir, {
      type: "elasticsearch",
      nodes: [es.url],
      index: "logs",
      username: "shipper",
      passwordFile: join(ws.dir, "password"),
    });
    writeFileSync(join(ws.logs, "a.log"), "secret-free line\n");
    const run = startExporter([...baseArgs(ws, sinks), "--print-config"]);
    expect(await run.exited).toBe(0);
    const second = startExporter(baseArgs(ws, sinks));
    await waitFor(() => es.documents("logs").size === 1, "the line");
    finishWorkload(ws.lifecycle);
    expect(await second.exited).toBe(0);
    const expected = `Basic ${Buffer.from("shipper:pa55-w0rd").toString("base64")}`;
    expect(es.authorizations.filter((a) => a !== undefined)).not.toHaveLength(0);
    expect(es.authorizations.every((a) => a === expected)).toBe(true);
    for (const out of [run.stdout(), run.stderr(), second.stdout(), second.stderr()]) {
      expect(out).not.toContain("pa55-w0rd");
    }
  });
});
