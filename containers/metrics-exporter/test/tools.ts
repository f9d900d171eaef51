// Starts the real Debian Pushgateway and node_exporter on free loopback ports, and runs
// promtool, for tests and the benchmark. Each instance gets its own throwaway state and is
// stopped by its `stop()`; nothing relies on the system services the packages install.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { request } from "undici";

export const PUSHGATEWAY_BIN = "/usr/bin/prometheus-pushgateway";
export const NODE_EXPORTER_BIN = "/usr/bin/prometheus-node-exporter";
export const PROMTOOL_BIN = "/usr/bin/promtool";

/** A free TCP port on 127.0.0.1 (bound and released; the race is harmless on a test box). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Running {
  url: string;
  process: ChildProcess;
  /** What the process wrote to stderr (its logs). */
  logs(): string;
  stop(): Promise<void>;
}

async function startDaemon(bin: string, args: (port: number) => string[], ready: string) {
  const port = await freePort();
  const child = spawn(bin, args(port), { stdio: ["ignore", "ignore", "pipe"] });
  let logs = "";
  child.stderr?.on("data", (d: Buffer) => {
    logs += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${bin} exited at start: ${logs}`);
    try {
      const res = await request(`${url}${ready}`);
      await res.body.text();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${bin} did not answer on ${url}: ${logs}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    process: child,
    logs: () => logs,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  } satisfies Running;
}

/** A Pushgateway without persistence (state lives in memory and dies with it). */
export function startPushgateway(): Promise<Running> {
  return startDaemon(
    PUSHGATEWAY_BIN,
    (port) => [
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.enable-admin-api",
      "--log.level=info",
    ],
    "/-/healthy",
  );
}

/** node_exporter with only the textfile collector, reading `dir`. */
export function startNodeExporter(dir: string): Promise<Running> {
  return startDaemon(
    NODE_EXPORTER_BIN,
    (port) => [
      `--web.listen-address=127.0.0.1:${port}`,
      "--collector.disable-defaults",
      "--collector.textfile",
      `--collector.textfile.directory=${dir}`,
    ],
    "/metrics",
  );
}

/** Runs `promtool check metrics` on `text`; resolves its exit code and output. */
export function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL_BIN, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
    child.stdin.end(text);
  });
}

/** GET a URL; body as text. */
export async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** GET a URL and read its whole body (raw bytes, not decompressed); resolves the time taken. */
export async function timedGet(url: string, headers: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  const res = await request(url, { headers });
  await res.body.arrayBuffer();
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}`);
  return performance.now() - started;
}

/** GET a URL asking for gzip, as Prometheus does; the body decompressed. */
export async function getGzipText(url: string): Promise<string> {
  const res = await request(url, { headers: { "accept-encoding": "gzip" } });
  const raw = Buffer.from(await res.body.arrayBuffer());
  return res.headers["content-encoding"] === "gzip" ? gunzipSync(raw).toString() : raw.toString();
}

export const PROMETHEUS_BIN = "/usr/bin/prometheus";

/** A Prometheus server scraping `target` (host:port) every second, with a throwaway TSDB. */
export async function startPrometheus(target: string, dataDir: string): Promise<Running> {
  const config = join(dataDir, "prometheus.yml");
  await writeFile(
    config,
    [
      "global: { scrape_interval: 1s, scrape_timeout: 900ms }",
      "scrape_configs:",
      "  - job_name: metrics-exporter",
      `    static_configs: [{ targets: ["${target}"] }]`,
      "",
    ].join("\n"),
  );
  return startDaemon(
    PROMETHEUS_BIN,
    (port) => [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dataDir, "tsdb")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    "/-/ready",
  );
}

/** Runs an instant query; resolves the result vector. */
export async function promQuery(
  prometheus: Running,
  query: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await request(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.body.json()) as { data: { result: never[] } };
  return body.data.result;
}
