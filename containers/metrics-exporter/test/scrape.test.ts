import { mkdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  OPENMETRICS_CONTENT_TYPE,
  ScrapeExposition,
  serveScrapes,
  TEXT_CONTENT_TYPE,
  TextfileDir,
} from "@buildpod/metrics-exporter";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKEN_FILE, bigFiles, GOOD_FILES, seriesValues, tempDir } from "./fixtures.ts";
import { eventually, testExporter } from "./helpers.ts";
import {
  get,
  promQuery,
  promtoolCheck,
  type Running,
  startNodeExporter,
  startPrometheus,
} from "./tools.ts";

/** Reads `dir` once and serves it; the caller closes the server. */
async function serveDir(dir: string) {
  const textfiles = new TextfileDir({ dir });
  const exposition = new ScrapeExposition();
  const refreshed = await textfiles.refresh();
  const report = exposition.update(refreshed.files, refreshed.warnings);
  const server = await serveScrapes(exposition, { host: "127.0.0.1", port: 0 });
  return { textfiles, exposition, report, server, url: `http://${server.address}/metrics` };
}

/** Reads `dir` again into an existing exposition, as a refresh with no change would. */
async function refreshAgain(exposition: ScrapeExposition, dir: string) {
  const refreshed = await new TextfileDir({ dir }).refresh();
  exposition.update(refreshed.files, refreshed.warnings);
}

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe("scrape server", () => {
  it("tells whether a scrape served the latest update, and waits for one", async () => {
    const dir = await tempDir("final-scrape");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "a.prom"), "# TYPE job_done gauge\njob_done 1\n");
    const { exposition, server, url } = await serveDir(dir);
    cleanup.push(() => server.close());

    expect(exposition.scrapedSinceUpdate()).toBe(false);
    expect(await exposition.waitForScrape(AbortSignal.timeout(200))).toBe(false);

    const waiting = exposition.waitForScrape(AbortSignal.timeout(30_000));
    const res = await request(url);
    expect(await res.body.text()).toContain("job_done 1");
    expect(await waiting).toBe(true);

    // An update that changes nothing a scraper sees needs no new scrape; one that does, does.
    await refreshAgain(exposition, dir);
    expect(exposition.scrapedSinceUpdate()).toBe(true);
    exposition.update([], []);
    expect(exposition.scrapedSinceUpdate()).toBe(false);
  });

  it("serves merged files with the 0.0.4 content type, mtime and scrape-error gauges", async () => {
    const dir = await tempDir("serve");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(GOOD_FILES)) await writeFile(join(dir, name), text);
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());

    const res = await get(s.url);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe(TEXT_CONTENT_TYPE);
    expect(res.body).toContain('build_duration_seconds{step="lint"} 3\n');
    expect(res.body).toContain('build_duration_seconds{step="compile"} 12.5\n');
    // One group for a family that two files contribute to.
    expect(res.body.match(/# TYPE build_duration_seconds gauge/g)).toHaveLength(1);
    expect(res.body).toContain(`node_textfile_mtime_seconds{file="${dir}/a.prom"}`);
    expect(res.body).toContain("node_textfile_scrape_error 0\n");
    expect(s.report.conflicts).toEqual([]);
  });

  it("answers OpenMetrics when asked, gzip when accepted, 404 elsewhere", async () => {
    const dir = await tempDir("om");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "a.prom"), GOOD_FILES["a.prom"] as string);
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());

    const accept =
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const om = await get(s.url, { accept });
    expect(om.headers["content-type"]).toBe(OPENMETRICS_CONTENT_TYPE);
    expect(om.body).toContain("# TYPE tests counter\n");
    expect(om.body).toContain('tests_total{result="passed"} 1520\n');
    expect(om.body.endsWith("# EOF\n")).toBe(true);

    const plain = await get(s.url, {
      accept: "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5",
    });
    expect(plain.headers["content-type"]).toBe(TEXT_CONTENT_TYPE);

    const zipped = await request(s.url, { headers: { "accept-encoding": "gzip" } });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    const body = gunzipSync(Buffer.from(await zipped.body.arrayBuffer())).toString();
    expect(body).toContain('tests_total{result="failed"} 3\n');

    expect((await get(s.url.replace("/metrics", "/other"))).status).toBe(404);
  });

  it("sends a gzip body of several members that decompresses to the plain body", async () => {
    const dir = await tempDir("members");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    for (const [name, text] of bigFiles(3000, 3)) await writeFile(join(dir, name), text);
    await writeFile(join(dir, "small.prom"), "small 1\n");
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());
    const plain = (await get(s.url)).body;
    const zipped = await request(s.url, { headers: { "accept-encoding": "gzip" } });
    const raw = Buffer.from(await zipped.body.arrayBuffer());
    // More than one member: each member starts with the gzip magic bytes 1f 8b 08.
    expect(raw.indexOf(Buffer.from([0x1f, 0x8b, 0x08]), 10)).toBeGreaterThan(0);
    expect(gunzipSync(raw).toString()).toBe(plain);
    expect(plain.split("\n").filter((l) => l.startsWith("job_metric_"))).toHaveLength(3000);
  });

  it("passes promtool check metrics", async () => {
    const dir = await tempDir("promtool");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(GOOD_FILES)) await writeFile(join(dir, name), text);
    await writeFile(join(dir, "broken.prom"), BROKEN_FILE);
    await writeFile(join(dir, "nohelp.prom"), "no_help_here 1\n");
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());

    const body = (await get(s.url)).body;
    const check = await promtoolCheck(body);
    expect(check.output).toBe("");
    expect(check.code).toBe(0);
  });

  it("reports TYPE, HELP and duplicate conflicts with file, line and metric, keeping the first", async () => {
    const dir = await tempDir("conflicts");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      join(dir, "a.prom"),
      '# HELP m A metric.\n# TYPE m gauge\nm{x="1"} 1\nshared 5\n',
    );
    await writeFile(join(dir, "b.prom"), '# TYPE m counter\nm{x="2"} 2\n');
    await writeFile(join(dir, "c.prom"), "# HELP shared Another help.\nshared 6\nonly_c 1\n");
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());

    const byKind = Object.groupBy(s.report.conflicts, (c) => c.kind);
    expect(byKind.type?.[0]).toMatchObject({
      metric: "m",
      file: `${dir}/b.prom`,
      line: 1,
      firstFile: `${dir}/a.prom`,
    });
    expect(byKind.duplicate?.[0]).toMatchObject({
      metric: "shared",
      file: `${dir}/c.prom`,
      line: 2,
    });
    expect(byKind.help).toBeUndefined(); // a.prom has no HELP for shared: c.prom's is used

    const body = (await get(s.url)).body;
    expect(body).toContain('m{x="1"} 1\n');
    expect(body).not.toContain('m{x="2"}');
    expect(body).toContain("shared 5\n");
    expect(body).toContain("only_c 1\n"); // the rest of c.prom is still used
    expect(body).toContain('metrics_exporter_textfile_conflicts{kind="type"} 1\n');
    expect(body).toContain('metrics_exporter_textfile_conflicts{kind="duplicate"} 1\n');
    expect(body).toContain("node_textfile_scrape_error 1\n");
  });
});

describe("a real Prometheus scraping us", () => {
  it("negotiates OpenMetrics and stores every type as written", async () => {
    const dir = await tempDir("prometheus");
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, "files"));
    for (const [name, text] of Object.entries(GOOD_FILES))
      await writeFile(join(dir, "files", name), text);
    const textfiles = new TextfileDir({ dir: join(dir, "files") });
    const exposition = new ScrapeExposition();
    const refreshed = await textfiles.refresh();
    exposition.update(refreshed.files, refreshed.warnings);
    const accepts: string[] = [];
    const server = createServer((req, res) => {
      accepts.push(String(req.headers.accept));
      void exposition.handle(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => server.close(() => r())));
    const { port } = server.address() as AddressInfo;
    const prometheus = await startPrometheus(`127.0.0.1:${port}`, dir);
    cleanup.push(() => prometheus.stop());

    const up = await eventually(async () => {
      const r = await promQuery(prometheus, 'up{job="metrics-exporter"}');
      return r[0]?.value[1] === "1" ? r : undefined;
    }, 60_000);
    expect(up).toHaveLength(1);
    expect(accepts[0]).toMatch(/^application\/openmetrics-text/);
    const value = async (q: string) => (await promQuery(prometheus, q))[0]?.value[1];
    expect(await value('tests_total{result="passed"}')).toBe("1520");
    // le as written (Prometheus 2 stores it so; rewriting it to 1.0 in OpenMetrics would make a
    // series whose name depends on the format negotiated).
    expect(await value('request_seconds_bucket{le="1"}')).toBe("15");
    expect(await value('rpc_seconds{quantile="0.99"}')).toBe("0.8");
    expect((await promQuery(prometheus, "last_message_info"))[0]?.metric.text).toBe(
      'line one\nsaid "hi"',
    );
    expect(await value('build_duration_seconds{step="lint"}')).toBe("3");
  }, 120_000);
});

describe("the exporter's serve output", () => {
  it("serves what is good and exits 4 at the drain when a file is broken or incomplete", async () => {
    const root = await tempDir("serve-exit");
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const { exporter, lines } = await testExporter(root, { serve: { host: "127.0.0.1", port: 0 } });
    cleanup.push(() => exporter.close());
    await writeFile(join(root, "prometheus", "good.prom"), "good 1\n");
    await writeFile(join(root, "prometheus", "bad.prom"), "bad one\n");
    await writeFile(join(root, "prometheus", "half.prom"), "half 1");
    await exporter.start();
    const body = (await get(`http://${exporter.server?.address}/metrics`)).body;
    expect(body).toContain("good 1\n");
    expect(body).not.toContain("half");
    const outcome = await exporter.drain(AbortSignal.timeout(10_000));
    expect(outcome.exitCode).toBe(4);
    expect(outcome.summary.dirs).toEqual({ prometheus: { files: 3, invalid: 2, conflicts: 0 } });
    const warned = lines.filter((l) => l.level === "warn").map((l) => l.msg);
    expect(warned.some((m) => m.includes("bad.prom:1: metric bad"))).toBe(true);
    expect(warned.some((m) => m.includes("half.prom") && m.includes("still incomplete"))).toBe(
      true,
    );
  });
});

describe("differential against node_exporter's textfile collector", () => {
  let dir: string;
  let nodeExporter: Running;
  beforeAll(async () => {
    dir = await tempDir("diff");
    for (const [name, text] of Object.entries(GOOD_FILES)) await writeFile(join(dir, name), text);
    await writeFile(join(dir, "broken.prom"), BROKEN_FILE);
    await writeFile(join(dir, "ignored.txt"), "not_a_prom_file 1\n");
    nodeExporter = await startNodeExporter(dir);
  }, 60_000);
  afterAll(async () => {
    await nodeExporter?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const textfileFamilies = (name: string) =>
    !/^(go|process|promhttp|node_exporter|node_scrape)_/.test(name) &&
    !name.startsWith("metrics_exporter_");

  it("serves the same series from the same directory", async () => {
    const s = await serveDir(dir);
    cleanup.push(() => s.server.close());
    const ours = seriesValues((await get(s.url)).body, (f) => textfileFamilies(f.name));
    const theirs = seriesValues((await get(`${nodeExporter.url}/metrics`)).body, (f) =>
      textfileFamilies(f.name),
    );
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [series, value] of theirs) expect(ours.get(series), series).toBeCloseTo(value, 6);
    expect(ours.get("node_textfile_scrape_error{}")).toBe(1);
    expect(ours.has("broken_metric{}")).toBe(false);
  });

  it("differs only where we report a conflict node_exporter hides", async () => {
    await writeFile(
      join(dir, "z-conflict.prom"),
      "# TYPE cache_hit_ratio counter\ncache_hit_ratio 7\n",
    );
    try {
      const s = await serveDir(dir);
      cleanup.push(() => s.server.close());
      const ours = seriesValues((await get(s.url)).body, (f) => textfileFamilies(f.name));
      const theirs = seriesValues((await get(`${nodeExporter.url}/metrics`)).body, (f) =>
        textfileFamilies(f.name),
      );
      expect(s.report.conflicts.map((c) => [c.kind, c.metric, c.file])).toEqual([
        ["type", "cache_hit_ratio", `${dir}/z-conflict.prom`],
      ]);
      const conflicted = new Set(s.report.conflicts.map((c) => c.metric));
      const differing = [...new Set([...ours.keys(), ...theirs.keys()])].filter(
        (k) => ours.get(k) !== theirs.get(k) && !k.startsWith("node_textfile_mtime_seconds"),
      );
      for (const k of differing) {
        const name = k.slice(0, k.indexOf("{"));
        expect(conflicted.has(name) || name === "node_textfile_scrape_error", k).toBe(true);
      }
      // node_exporter drops a series silently: it does not even flag a scrape error.
      expect(theirs.get("node_textfile_scrape_error{}")).toBe(1); // (broken.prom)
      expect(ours.get("cache_hit_ratio{}")).toBe(0.93);
    } finally {
      await rm(join(dir, "z-conflict.prom"));
    }
  });
});
