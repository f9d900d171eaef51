// The record model, documents, ids, the CRI parser, globs and the sinks file, tested directly.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@buildpod/config";
import { describe, expect, it } from "vitest";
import { DocumentEncoder } from "../src/document.ts";
import { decodeLine, Flag, type LogRecord, originKey, recordId } from "../src/record.ts";
import { chooseSink, loadSinksFile } from "../src/sinks/index.ts";
import { parseCriLine } from "../src/sources/assemble.ts";
import { splitGlob } from "../src/sources/index.ts";
import { workspace } from "./helpers.ts";

const origin = { path: "/logs/a b.log", key: "k1" };
const record = (over: Partial<LogRecord> = {}): LogRecord => ({
  origin,
  message: "hello",
  offset: 42,
  time: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
  flags: 0,
  ...over,
});

describe("documents", () => {
  const encoder = new DocumentEncoder({
    kubernetes: { namespace: "ci", podName: "p", containerName: "workload" },
    buildkite: { jobId: "j", pipeline: "web", buildId: undefined },
    labels: { team: 'a"b' },
  });

  it.each([
    ["plain text", "hello"],
    ["quotes and backslashes", 'say "hi" \\ bye'],
    ["control characters and tabs", "a\tb\u0001c\r"],
    ["non-ASCII", "grüße 漢字 🎉"],
    ["an empty line", ""],
  ])("renders %s as valid JSON with every field", (_name, message) => {
    const doc = JSON.parse(encoder.text(record({ message })));
    expect(doc).toEqual({
      "@timestamp": "2026-01-02T03:04:05.006Z",
      message,
      log: { file: { path: "/logs/a b.log" }, offset: 42 },
      kubernetes: { namespace: "ci", pod: { name: "p" }, container: { name: "workload" } },
      buildkite: { job_id: "j", pipeline: "web" },
      labels: { team: 'a"b' },
    });
  });

  it("adds flags, the stream and the source's own timestamp", () => {
    const streamed = { key: "k2", stream: "stderr" as const };
    const doc = JSON.parse(
      encoder.text(
        record({
          origin: streamed,
          flags: Flag.SPLIT | Flag.REPLACED,
          timeText: "2026-01-02T03:04:05.123456789Z",
        }),
      ),
    );
    expect(doc.stream).toBe("stderr");
    expect(doc["@timestamp"]).toBe("2026-01-02T03:04:05.123456789Z");
    expect(doc.log).toEqual({ offset: 42, flags: ["replaced_bytes", "split"] });
  });
});

describe("ids", () => {
  it("are stable per line and differ across files, generations and offsets", () => {
    expect(recordId(record())).toBe("k1-16");
    expect(originKey("job", "/logs", "1:2", 0)).toBe(originKey("job", "/logs", "1:2", 0));
    expect(originKey("job", "/logs", "1:2", 0)).not.toBe(originKey("job", "/logs", "1:2", 1));
    expect(originKey("job", "/logs", "1:2", 0)).not.toBe(originKey("job", "/logs", "1:3", 0));
    expect(recordId(record({ id: "explicit" }))).toBe("explicit");
  });

  it("flag invalid UTF-8 from byte sources", () => {
    expect(decodeLine(Buffer.from([0x61, 0xff, 0x62]))).toEqual({
      message: "a\uFFFDb",
      flags: Flag.REPLACED,
    });
    expect(decodeLine(Buffer.from("ok"))).toEqual({ message: "ok", flags: 0 });
  });
});

describe("CRI lines", () => {
  it.each([
    [
      "2026-01-02T03:04:05.000000001Z stdout F hello world",
      { stream: "stdout", tag: "F", message: "hello world" },
    ],
    [
      "2026-01-02T03:04:05.000000001Z stderr P part",
      { stream: "stderr", tag: "P", message: "part" },
    ],
    ["2026-01-02T03:04:05.000000001Z stdout F:x ", { stream: "stdout", tag: "F", message: "" }],
    ["not a cri line", { stream: "stdout", tag: "F", message: "not a cri line" }],
  ])("parses %j", (line, expected) => {
    expect(parseCriLine(line)).toMatchObject(expected);
  });
});

describe("paths and globs", () => {
  it.each([
    ["/workspace/build/*.log", { root: "/workspace/build", include: "*.log" }],
    ["/workspace/**/junit-*.xml", { root: "/workspace", include: "**/junit-*.xml" }],
    ["/var/log/app.log", { root: "/var/log", include: "app.log" }],
  ])("splits %s", (glob, expected) => {
    expect(splitGlob(glob)).toEqual(expected);
  });

  it("refuses a relative glob", () => {
    expect(() => splitGlob("build/*.log")).toThrow(ConfigError);
  });
});

describe("sinks file", () => {
  it("loads every sink type and picks the default or the named one", () => {
    const ws = workspace();
    const path = join(ws.dir, "sinks.yaml");
    writeFileSync(
      path,
      [
        "default: es",
        "sinks:",
        "  es: { type: elasticsearch, nodes: ['http://127.0.0.1:9200'], index: logs }",
        "  fd: { type: fluentd, host: fluentd }",
        "  gcp: { type: stackdriver, projectId: p, location: eu, clusterName: c }",
        "  out: { type: stdout }",
        "  arch: { type: file, path: /tmp/x.ndjson }",
      ].join("\n"),
    );
    const file = loadSinksFile(path).file;
    expect(chooseSink(file, undefined).name).toBe("es");
    expect(chooseSink(file, "fd").spec).toMatchObject({
      type: "fluentd",
      port: 24224,
      tag: "buildkite.job",
    });
    expect(() => chooseSink(file, "nope")).toThrow(
      /one of the sinks in the sinks file \(es, fd, gcp, out, arch\)/,
    );
    expect(chooseSink(undefined, undefined).spec).toEqual({ type: "stdout" });
  });

  it("names the line of every problem", () => {
    const ws = workspace();
    const path = join(ws.dir, "sinks.yaml");
    writeFileSync(
      path,
      "sinks:\n  es:\n    type: elasticsearch\n    nodes: [nope]\n    indx: logs\n",
    );
    let error: unknown;
    try {
      loadSinksFile(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = String((error as Error).message);
    expect(text).toContain("sinks.yaml");
    expect((error as ConfigError).problems.length).toBeGreaterThanOrEqual(2);
  });
});
