import { startHealthServer } from "@buildpod/runtime";
import { Counter, collectDefaultMetrics, Registry } from "prom-client";
import { describe, expect, it } from "vitest";

describe("startHealthServer", () => {
  it("prepares the metrics once, at the first scrape, and serves the container's own with them", async () => {
    const registry = new Registry();
    const uploads = new Counter({ name: "uploads_total", help: "uploads", registers: [registry] });
    uploads.inc(3);
    let prepared = 0;
    const server = await startHealthServer({
      host: "127.0.0.1",
      port: 0,
      registry,
      isReady: () => true,
      beforeFirstScrape: async () => {
        prepared++;
        collectDefaultMetrics({ register: registry });
        await new Promise((resolve) => setTimeout(resolve, 30));
      },
    });
    try {
      const get = async (path: string) => (await fetch(`${server.url}${path}`)).text();
      expect(await get("/healthz")).toBe("ok\n");
      expect(await get("/readyz")).toBe("ready\n");
      expect(prepared).toBe(0);

      const [first, concurrent] = await Promise.all([get("/metrics"), get("/metrics")]);
      const second = await get("/metrics");
      expect(prepared).toBe(1);
      for (const body of [first, concurrent, second]) {
        expect(body).toContain("uploads_total 3");
        expect(body).toMatch(/^process_cpu_user_seconds_total \d/m);
      }
      // prom-client empties the event loop histogram at each scrape: the first collected of the
      // two concurrent ones has its samples.
      const lagMean = /^nodejs_eventloop_lag_mean_seconds \d/m;
      expect(lagMean.test(first) || lagMean.test(concurrent)).toBe(true);
    } finally {
      await server.close();
    }
  });
});
