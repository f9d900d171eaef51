import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface HealthServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /**
   * Runs once, at the first `/metrics` request; every answer is collected after it settles.
   * The runtime registers Node's process metrics (CPU, memory, event loop delay, garbage
   * collection) there rather than at start: their modules and collectors cost an idle sidecar
   * about 2 MiB of RSS, and a container nobody scrapes never needs them.
   */
  beforeFirstScrape?: () => void | Promise<void>;
  /** Whether the container is ready for work; `/readyz` answers 503 until it is. */
  isReady: () => boolean;
}

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `/healthz` (the process answers), `/readyz` (the container is ready) and `/metrics`
 * (the process's metrics and the container's own counters) for probes and scrapers.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  let prepared: Promise<void> | undefined;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const ready = options.isReady();
      res
        .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
        .end(ready ? "ready\n" : "not ready\n");
    } else if (path === "/metrics") {
      prepared ??= Promise.resolve(options.beforeFirstScrape?.());
      prepared
        .then(() => options.registry.metrics())
        .then(
          (body) => res.writeHead(200, { "content-type": options.registry.contentType }).end(body),
          (err: Error) => res.writeHead(500).end(`could not collect metrics: ${err.message}\n`),
        );
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  server.unref();
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
