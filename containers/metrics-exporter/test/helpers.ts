// A logger that keeps its JSON lines, and an Exporter wired for tests.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@buildpod/runtime";
import { Registry } from "prom-client";
import { Exporter, type ExporterOptions } from "../src/exporter.ts";

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export function memoryLogger() {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim() !== "") lines.push(JSON.parse(l));
      done();
    },
  });
  const logger = createLogger({ component: "metrics-exporter", level: "debug", destination });
  return { logger, lines };
}

/** An exporter over `root` with the given outputs; subdirectories are created. */
export async function testExporter(
  root: string,
  outputs: Pick<ExporterOptions, "serve" | "push" | "datadog">,
) {
  for (const sub of ["prometheus", "prometheus-push", "datadog"]) {
    await mkdir(join(root, sub), { recursive: true });
  }
  const { logger, lines } = memoryLogger();
  const metrics = new Registry();
  const exporter = new Exporter({
    root,
    ...outputs,
    incompleteGraceMs: 5000,
    rescanIntervalMs: 1000,
    logger,
    metrics,
  });
  return { exporter, lines, metrics };
}

/** Polls `check` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${ms} ms: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
