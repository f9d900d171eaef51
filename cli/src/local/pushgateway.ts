import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.ts";

/** Where Debian's prometheus-pushgateway package puts the binary. */
const BINARY = "/usr/bin/prometheus-pushgateway";

export interface LocalPushgateway {
  url: string;
  /** A metrics-exporter push file pointing at it. */
  configFile: string;
  stop(): Promise<void>;
}

/**
 * Starts the Pushgateway on a free loopback port for one local run, when it is installed;
 * undefined when it is not (the run's summary says the push was skipped).
 */
export async function startPushgateway(runDir: string): Promise<LocalPushgateway | undefined> {
  if (!existsSync(BINARY)) return undefined;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dir = path.join(runDir, "pushgateway");
  mkdirSync(dir, { recursive: true });
  const child = spawn(BINARY, [`--web.listen-address=127.0.0.1:${port}`], { stdio: "ignore" });
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const configFile = path.join(dir, "pushgateway.yaml");
  writeFileSync(configFile, stringify({ pushgateway: { url, job: "buildpod-local" } }));
  return {
    url,
    configFile,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}
