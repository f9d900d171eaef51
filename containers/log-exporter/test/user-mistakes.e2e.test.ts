// What users run into with only the docs: configuration mistakes that must be exit 2 with an
// error naming the input, files with CRLF line ends, and sink failures whose logs must neither
// flood nor leak secrets.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
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

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("log-exporter configuration mistakes", () => {
  it("refuses credentials in a node URL without repeating them", async () => {
    const ws = workspace();
    const url = "http://elastic:hunter2-url-password@127.0.0.1:9200";
    const sinks = sinksFile(ws.dir, { type: "elasticsearch", nodes: [url], index: "logs" });
    const run = startExporter(baseArgs(ws, sinks));

    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      "sinks.main.nodes.0 (" +
        `${sinks} line 7): expected a URL without credentials (user:password@); give them by ` +
        '`username` and `passwordFile`, got "http://***@127.0.0.1:9200"',
    );
    expect(run.stdout() + run.stderr()).not.toContain("hunter2");
  });

  it("says an inline credential must be a file, and suggests the key a typo meant", async () => {
    const ws = workspace();
    const sinks = join(ws.dir, "sinks.yaml");
    writeFileSync(
      sinks,
      [
        "default: es",
        "sinks:",
        "  es:",
        "    type: elasticsearch",
        "    nodes: ['http://127.0.0.1:9200']",
        "    indx: logs",
        "    password: hunter2",
      ].join("\n"),
    );
    const run = startExporter(baseArgs(ws, sinks));

    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `sinks.es.indx (${sinks} line 6): expected a known key, got "indx"; did you mean "index"?`,
    );
    expect(run.stderr()).toContain(
      `sinks.es.password (${sinks} line 7): expected a known key, got "password"; credentials ` +
        "are read from files only: mount the secret and give its path as " +
        "`passwordFile: /path/to/file`",
    );
    expect(run.stdout() + run.stderr()).not.toContain("hunter2");
  });

  it("names the flag or env var of an unknown --sink", async () => {
    const ws = workspace();
    const sinks = sinksFile(ws.dir, { type: "stdout" });
    const byEnv = startExporter(baseArgs(ws, sinks), { LOG_EXPORTER_SINK: "elastik" });
    expect(await byEnv.exited).toBe(2);
    expect(byEnv.stderr()).toContain(
      'sink (env LOG_EXPORTER_SINK): expected one of the sinks in the sinks file (main), got "elastik"',
    );
  });

  it("refuses a --logs that is a file, before opening the sink", async () => {
    const ws = workspace();
    const file = join(ws.dir, "build.log");
    writeFileSync(file, "a line\n");
    const out = join(ws.dir, "out", "records.ndjson");
    const sinks = sinksFile(ws.dir, { type: "file", path: out });
    const args = baseArgs(ws, sinks).map((word) => (word === ws.logs ? file : word));
    const run = startExporter(args);

    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `logs (flag --logs): expected a directory (every file below it is exported), got "${file}", ` +
        "which is not a directory; give the logs directory; name single files with --path",
    );
    expect(existsSync(out)).toBe(false);
  });

  it("keeps running without sources until the workload finished", async () => {
    const ws = workspace();
    // A stdout sink: the exporter's own lines go to stderr.
    const sinks = sinksFile(ws.dir, { type: "stdout" });
    const args = baseArgs(ws, sinks).map((word) => (word === ws.logs ? `${ws.logs}-none` : word));
    const run = startExporter(args);
    let exited = false;
    void run.exited.then(() => {
      exited = true;
    });
    await waitFor(() => run.stderr().includes("no sources"), "the no-sources warning");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(exited).toBe(false);

    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);
  });
});

describe("log-exporter with CRLF files", () => {
  it.each([
    ["one record per line", []],
    ["multiline", ["--multiline-start", "^\\S"]],
  ])("delivers each line without its \\r\\n (%s)", async (_, extra) => {
    const ws = workspace();
    const out = join(ws.dir, "records.ndjson");
    const sinks = sinksFile(ws.dir, { type: "file", path: out });
    writeFileSync(join(ws.logs, "win.log"), "first\r\n  more\r\nsecond\r\nlast\r");
    const run = startExporter([...baseArgs(ws, sinks), ...extra]);
    await waitFor(() => run.stdout().includes("exporting logs"), "the start");
    finishWorkload(ws.lifecycle);

    expect(await run.exited).toBe(0);
    const messages = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).message);
    const joined = extra.length > 0;
    // A last line without a newline keeps its \r: it is not a line end.
    expect(messages).toEqual(
      joined ? ["first\n  more", "second", "last\r"] : ["first", "  more", "second", "last\r"],
    );
  });
});

describe("log-exporter with an elasticsearch that fails", () => {
  it("says once that an unreachable sink cannot be reached, without the credentials", async () => {
    const ws = workspace();
    const password = join(ws.dir, "password");
    writeFileSync(password, "hunter2-password\n");
    const sinks = sinksFile(ws.dir, {
      type: "elasticsearch",
      nodes: [`http://127.0.0.1:${await closedPort()}`],
      index: "logs",
      username: "elastic",
      passwordFile: password,
    });
    writeFileSync(join(ws.logs, "build.log"), "compiling\n");
    const run = startExporter([...baseArgs(ws, sinks), "--drain-timeout", "2s"]);
    await waitFor(() => run.stdout().includes("could not reach the sink"), "the warning");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    finishWorkload(ws.lifecycle);

    expect(await run.exited).toBe(3);
    expect(run.summary()).toMatchObject({ lines: 1, delivered: 0, undelivered: 1 });
    const out = run.stdout() + run.stderr();
    expect(out.match(/could not reach the sink/g)).toHaveLength(1);
    expect(out).not.toContain("could not deliver a batch");
    const basic = Buffer.from("elastic:hunter2-password").toString("base64");
    expect(out).not.toContain(basic);
    expect(out).not.toContain("hunter2");
  });

  it.each([
    {
      name: "a 503 by its status and reason, not the whole request",
      status: 503,
      says: /^_bulk answered 503: unavailable_shards_exception: forced by the test$/,
    },
    {
      name: "a 401 with the sink credentials to check",
      status: 401,
      says: /^_bulk answered 401: .*; check the sink's username and passwordFile, or apiKeyFile/,
    },
  ])("logs a failed _bulk request: $name", async ({ status, says }) => {
    const es = await startFakeElasticsearch({ requestStatus: () => status });
    fakes.push(es);
    const ws = workspace();
    const sinks = sinksFile(ws.dir, { type: "elasticsearch", nodes: [es.url], index: "logs" });
    writeFileSync(join(ws.logs, "build.log"), "a secret-looking log line\n".repeat(200));
    const run = startExporter([...baseArgs(ws, sinks), "--drain-timeout", "1s"]);
    await waitFor(() => run.stdout().includes("could not deliver a batch"), "a retry");
    finishWorkload(ws.lifecycle);

    expect(await run.exited).toBe(3);
    const retry = run.logLines().find((l) => l.msg.startsWith("could not deliver a batch"));
    expect(retry?.err.message).toMatch(says);
    expect(JSON.stringify(retry).length).toBeLessThan(2000);
  });
});
