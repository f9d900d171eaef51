import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeMarker } from "@buildpod/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { parseJUnit } from "../src/index.ts";

const MAIN = path.resolve(import.meta.dirname, "../src/main.ts");

const REPORT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="vitest tests" tests="4" failures="1" errors="0" time="1.5">
  <testsuite name="shared/config/test/config.test.ts" tests="4" failures="1" skipped="1">
    <testcase classname="config" name="takes flags over env" time="0.25"/>
    <testcase classname="config" name="reports problems" time="1.0">
      <failure message="expected 2 problems, got 1" type="AssertionError">stack</failure>
    </testcase>
    <testcase classname="config" name="reads secrets" time="0.05"/>
    <testcase classname="config" name="later" time="0"><skipped/></testcase>
  </testsuite>
</testsuites>`;

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function endpoint(handler: (req: IncomingMessage, body: string) => number | undefined) {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const status = handler(req, Buffer.concat(chunks).toString());
    if (status !== undefined) res.writeHead(status).end();
    // undefined: never answer, like a hung endpoint.
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/summary`;
}

function setup() {
  const dir = mkdtempSync(path.join(tmpdir(), "test-results-"));
  const lifecycle = path.join(dir, "lifecycle");
  const artifacts = path.join(dir, "artifacts");
  mkdirSync(lifecycle);
  mkdirSync(path.join(artifacts, "junit"), { recursive: true });
  return { lifecycle, artifacts };
}

function startSidecar(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (c) => {
    stdout += c;
  });
  const exited = once(child, "exit").then(([code]) => code as number);
  const started = new Promise<void>((resolve) => {
    child.stdout.on("data", () => {
      if (stdout.includes('"msg":"starting"')) resolve();
    });
  });
  return { child, exited, started, output: () => stdout };
}

describe("parseJUnit", () => {
  it("reads nested suites, failures and skips", () => {
    const cases = parseJUnit(REPORT);
    expect(cases.map((c) => c.status)).toEqual(["passed", "failed", "passed", "skipped"]);
    expect(cases[1]).toMatchObject({
      name: "reports problems",
      time: 1,
      message: "expected 2 problems, got 1",
    });
  });

  it("refuses a document that is not a JUnit report", () => {
    expect(() => parseJUnit("<html><body/></html>")).toThrow(
      /neither <testsuites> nor <testsuite>/,
    );
  });
});

describe("test-results sidecar", () => {
  it("posts the summary once the workload finished", async () => {
    const { lifecycle, artifacts } = setup();
    writeFileSync(path.join(artifacts, "junit", "config.xml"), REPORT);
    writeFileSync(path.join(artifacts, "junit", "broken.xml"), "<testsuites><testsuite");
    writeFileSync(path.join(artifacts, "build.log"), "not a report\n");
    const posted: { auth?: string; body: Record<string, unknown> }[] = [];
    const url = await endpoint((req, body) => {
      posted.push({ auth: req.headers.authorization, body: JSON.parse(body) });
      return 204;
    });
    const tokenFile = path.join(lifecycle, "endpoint-token");
    writeFileSync(tokenFile, "summary-token-123\n");
    const sidecar = startSidecar({
      BUILDPOD_LIFECYCLE_DIR: lifecycle,
      TEST_RESULTS_ROOT: artifacts,
      TEST_RESULTS_INCLUDE: "junit/*.xml",
      TEST_RESULTS_ENDPOINT: url,
      TEST_RESULTS_TOKEN_FILE: tokenFile,
      TEST_RESULTS_SLOWEST: "2",
    });
    await sidecar.started;
    await new Promise((r) => setTimeout(r, 300));
    expect(posted).toHaveLength(0);
    await writeMarker(path.join(lifecycle, "workload-finished"), 1);

    expect(await sidecar.exited).toBe(4);
    expect(posted).toHaveLength(1);
    expect(posted[0]?.auth).toBe("Bearer summary-token-123");
    expect(posted[0]?.body).toMatchObject({
      workload_exit_code: 1,
      files: 1,
      tests: 4,
      passed: 2,
      failed: 1,
      skipped: 1,
      slowest: [
        { name: "reports problems", seconds: 1 },
        { name: "takes flags over env", seconds: 0.25 },
      ],
      failures: [{ name: "reports problems", message: "expected 2 problems, got 1" }],
      unreadable: [{ path: "junit/broken.xml" }],
    });
    expect(sidecar.output()).not.toContain("summary-token-123");
    const status = JSON.parse(
      readFileSync(path.join(lifecycle, "status", "test-results.json"), "utf8"),
    );
    expect(status).toMatchObject({ exit_code: 4, summary: { posted: true, tests: 4 } });
  });

  it("gives up at the drain deadline when the endpoint never answers", async () => {
    const { lifecycle, artifacts } = setup();
    writeFileSync(path.join(artifacts, "junit", "config.xml"), REPORT);
    const url = await endpoint(() => undefined);
    const sidecar = startSidecar({
      BUILDPOD_LIFECYCLE_DIR: lifecycle,
      BUILDPOD_DRAIN_TIMEOUT: "2s",
      TEST_RESULTS_ROOT: artifacts,
      TEST_RESULTS_ENDPOINT: url,
    });
    await sidecar.started;
    const signalled = Date.now();
    sidecar.child.kill("SIGTERM");
    expect(await sidecar.exited).toBe(3);
    // The drain deadline is 2 s; a loaded machine gets slack, a hang would take far longer.
    expect(Date.now() - signalled).toBeLessThan(15_000);
    expect(sidecar.output()).toContain("drain deadline reached before the summary was posted");
  });
});
