// The bundle as the image runs it: flags and env in, a real Pushgateway, a fake Datadog intake,
// a scrape, the workload-finished marker, then the exit code, summary line and status file.
import { execFileSync, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeDatadog, startFakeDatadog } from "../../../test/fakes/datadog.ts";
import { tempDir } from "./fixtures.ts";
import { eventually } from "./helpers.ts";
import { freePort, get, type Running, startPushgateway } from "./tools.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const BUNDLE = join(ROOT, "containers/metrics-exporter/dist/metrics-exporter.mjs");

let gateway: Running;
let intake: FakeDatadog;
let work: string;
beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, "scripts/build.ts"), "metrics-exporter"], {
    cwd: ROOT,
    stdio: "ignore",
  });
  gateway = await startPushgateway();
  intake = await startFakeDatadog({ apiKey: "e2e-api-key-5678" });
  work = await tempDir("e2e");
}, 120_000);
afterAll(async () => {
  await gateway?.stop();
  await intake?.close();
  await rm(work, { recursive: true, force: true });
});

function start(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BUNDLE, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number>((done) => child.on("exit", (code) => done(code ?? -1)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe("metrics-exporter bundle", () => {
  it("serves, pushes and forwards, then drains on the marker and exits 0", async () => {
    const root = join(work, "metrics");
    const lifecycle = join(work, "buildpod");
    for (const d of ["prometheus", "prometheus-push", "datadog"])
      await mkdir(join(root, d), { recursive: true });
    await mkdir(lifecycle, { recursive: true });
    await writeFile(join(work, "password"), "s3cret-pass\n");
    await writeFile(
      join(work, "pushgateway.yaml"),
      `pushgateway:\n  url: ${gateway.url}\n  job: e2e\n  basicAuth: { username: ci, passwordFile: ${join(work, "password")} }\n`,
    );
    const port = await freePort();
    const run = start(
      [
        "--listen",
        `127.0.0.1:${port}`,
        "--push-config",
        join(work, "pushgateway.yaml"),
        "--push-debounce",
        "100ms",
        "--datadog",
        "api",
        "--datadog-api-url",
        intake.url,
      ],
      {
        METRICS_ROOT: root,
        BUILDPOD_LIFECYCLE_DIR: lifecycle,
        DD_API_KEY: "e2e-api-key-5678",
        BUILDKITE_PIPELINE_SLUG: "team/app",
        BUILDKITE_LABEL: ":hammer: build/test",
      },
    );
    try {
      await writeFile(join(root, "prometheus", "a.prom"), "# TYPE served gauge\nserved 1\n");
      await writeFile(join(root, "prometheus-push", "a.prom"), "# TYPE pushed gauge\npushed 2\n");
      await writeFile(join(root, "datadog", "a.prom"), "# TYPE forwarded gauge\nforwarded 3\n");

      const scrape = await eventually(async () => {
        const res = await get(`http://127.0.0.1:${port}/metrics`);
        return res.body.includes("served 1\n") ? res : undefined;
      });
      expect(scrape.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");

      const group = await eventually(async () => {
        const res = await request(`${gateway.url}/api/v1/metrics`);
        const data = (
          (await res.body.json()) as {
            data: { labels: Record<string, string>; pushed?: unknown }[];
          }
        ).data;
        return data.find((g) => g.labels.job === "e2e" && g.pushed !== undefined);
      });
      expect(group.labels).toEqual({
        job: "e2e",
        pipeline: "team/app",
        step: ":hammer: build/test",
      });

      await writeFile(join(lifecycle, "workload-finished"), "0\n");
      expect(await run.exited).toBe(0);
      const forwarded = intake.series.find((s) => s.metric === "forwarded");
      expect(forwarded?.tags).toEqual(["pipeline:team/app"]);

      const status = JSON.parse(
        await readFile(join(lifecycle, "status/metrics-exporter.json"), "utf8"),
      );
      expect(status.exit_code).toBe(0);
      expect(status.summary.dirs["prometheus-push"]).toEqual({
        files: 1,
        invalid: 0,
        conflicts: 0,
      });
      expect(status.summary.pushgateway).toMatchObject({ delivered: true, rejected: 0 });
      expect(status.summary.datadog).toMatchObject({ via: "api", rejected: 0, undelivered: 0 });
      expect(run.out() + run.err()).not.toContain("s3cret-pass");
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 120_000);

  it.each([
    ["the Pushgateway", "push", ["--push-config", "push.yaml"]],
    ["the Datadog API", "datadog", ["--datadog", "api", "--datadog-api-key-file", "key"]],
  ])(
    "keeps retrying %s until the drain deadline when it refuses connections, then exits 3",
    async (_, dir, flags) => {
      const base = join(work, `down-${dir}`);
      const root = join(base, "metrics");
      const lifecycle = join(base, "buildpod");
      const outputDir = dir === "push" ? "prometheus-push" : "datadog";
      await mkdir(join(root, outputDir), { recursive: true });
      await mkdir(lifecycle, { recursive: true });
      await writeFile(join(root, outputDir, "a.prom"), "# TYPE x gauge\nx 1\n");
      const down = `http://127.0.0.1:${await freePort()}`;
      await writeFile(join(base, "push.yaml"), `pushgateway:\n  url: ${down}\n  timeout: 1s\n`);
      await writeFile(join(base, "key"), "e2e-api-key-5678");
      const args = flags.map((f) => (f.endsWith(".yaml") || f === "key" ? join(base, f) : f));
      const run = start(
        [...args, "--datadog-api-url", `${down}/api/v2/series`, "--drain-timeout", "3s"],
        { METRICS_ROOT: root, BUILDPOD_LIFECYCLE_DIR: lifecycle },
      );
      try {
        await new Promise((r) => setTimeout(r, 1000));
        const finishedAt = Date.now();
        await writeFile(join(lifecycle, "workload-finished"), "0\n");
        expect(await run.exited).toBe(3);
        const took = Date.now() - finishedAt;
        expect(took).toBeGreaterThan(2500);
        expect(took).toBeLessThan(6000);
        expect(run.out()).not.toContain("internal error");
        const status = JSON.parse(
          await readFile(join(lifecycle, "status", "metrics-exporter.json"), "utf8"),
        );
        expect(status.exit_reason).toBe("INCOMPLETE");
      } finally {
        run.child.kill("SIGKILL");
      }
    },
    60_000,
  );

  it("reports a file still incomplete at the drain by its path, with no line number", async () => {
    const root = join(work, "incomplete-metrics");
    const lifecycle = join(work, "incomplete-lifecycle");
    await mkdir(join(root, "prometheus"), { recursive: true });
    await mkdir(lifecycle, { recursive: true });
    await writeFile(join(root, "prometheus", "half.prom"), "steps_done 1");
    await writeFile(join(lifecycle, "workload-finished"), "0\n");
    const port = await freePort();
    const run = start(["--listen", `127.0.0.1:${port}`, "--final-scrape-wait", "0"], {
      METRICS_ROOT: root,
      BUILDPOD_LIFECYCLE_DIR: lifecycle,
    });
    await run.exited;

    const lines = run
      .out()
      .split("\n")
      .filter((l) => l.includes("still incomplete at the end of the job"));
    expect(lines.length).toBeGreaterThan(0);
    const entry = JSON.parse(lines[0] as string) as { msg: string; line?: number };
    expect(entry.line).toBeUndefined();
    expect(entry.msg).not.toContain(".prom:0");
  }, 60_000);

  it("reads the push file for --print-config as a run would", async () => {
    const good = join(work, "print-push.yaml");
    await writeFile(good, `pushgateway:\n  url: ${gateway.url}\n  job: printed\n`);
    const shown = start(["--print-config", "--push-config", good], {
      BUILDPOD_LIFECYCLE_DIR: join(work, "print"),
    });
    expect(await shown.exited).toBe(0);
    expect(JSON.parse(shown.out())).toMatchObject({ push: { url: gateway.url, job: "printed" } });

    const bad = join(work, "print-push-creds.yaml");
    await writeFile(bad, "pushgateway:\n  url: https://ci:hunter2-pw@pushgateway:9091\n");
    const refused = start(["--print-config", "--push-config", bad], {
      BUILDPOD_LIFECYCLE_DIR: join(work, "print"),
    });
    expect(await refused.exited).toBe(2);
    expect(refused.err()).toContain(`pushgateway.url (${bad} line 2)`);
    expect(refused.out() + refused.err()).not.toContain("hunter2-pw");
  }, 60_000);

  it("exits 2 naming every configuration problem", async () => {
    const run = start(["--datadog", "api", "--datadog-dogstatsd-port", "99999"], {
      BUILDPOD_LIFECYCLE_DIR: join(work, "cfg"),
      METRICS_ROOT: join(work, "cfg-metrics"),
    });
    expect(await run.exited).toBe(2);
    const text = run.out() + run.err();
    expect(text).toContain("datadogDogstatsdPort");
  }, 60_000);

  it("exits 2 when the API key is missing for --datadog api", async () => {
    const run = start(["--datadog", "api"], {
      BUILDPOD_LIFECYCLE_DIR: join(work, "cfg2"),
      METRICS_ROOT: join(work, "cfg2-metrics"),
    });
    expect(await run.exited).toBe(2);
    expect(run.out() + run.err()).toContain("datadogApiKey");
  }, 60_000);
});
