import { execFileSync } from "node:child_process";
import { appendFile, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ScrapeExposition, TextfileDir } from "@buildpod/metrics-exporter";
import { afterAll, describe, expect, it } from "vitest";
import { bigFiles, tempDir, writeAtomic } from "./fixtures.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function newDir(prefix: string) {
  const d = await tempDir(prefix);
  dirs.push(d);
  return d;
}

describe("TextfileDir", () => {
  it("reads only *.prom files at the top of the directory, and a missing directory is empty", async () => {
    const dir = await newDir("list");
    await writeFile(join(dir, "a.prom"), "a 1\n");
    await writeFile(join(dir, "a.prom.tmp"), "half 1");
    await mkdir(join(dir, "sub"));
    await writeFile(join(dir, "sub", "b.prom"), "b 1\n");
    const r = await new TextfileDir({ dir }).refresh();
    expect(r.files.map((f) => [f.name, f.status])).toEqual([["a.prom", "ok"]]);

    const missing = await new TextfileDir({ dir: join(dir, "nope") }).refresh();
    expect(missing).toMatchObject({ files: [], warnings: [], retry: false });
  });

  it("does not use a file without its final newline: keeps the previous version and reads it again", async () => {
    const dir = await newDir("newline");
    const path = join(dir, "job.prom");
    let now = 0;
    const textfiles = new TextfileDir({ dir, settleMs: 5000, now: () => now });

    await writeFile(path, "steps_done 1\n");
    let r = await textfiles.refresh();
    expect(r.files[0]).toMatchObject({ status: "ok" });

    // Rewritten in place, caught half-way: the old version stays in use.
    await writeFile(path, "steps_done 2\nsteps_lef");
    r = await textfiles.refresh();
    expect(r.retry).toBe(true);
    expect(r.files[0]?.status).toBe("stale");
    expect(r.files[0]?.families[0]?.samples[0]?.value).toBe(1);
    expect(r.files[0]?.problems).toEqual([]);

    // Still incomplete past the grace period: now it is reported.
    now = 6000;
    r = await textfiles.refresh();
    expect(r.files[0]?.status).toBe("stale");
    expect(r.files[0]?.problems[0]?.message).toContain("no final newline");

    await appendFile(path, "t 3\n");
    r = await textfiles.refresh();
    expect(r.changed).toBe(true);
    expect(r.retry).toBe(false);
    expect(r.files[0]?.status).toBe("ok");
    expect(r.files[0]?.families.map((f) => f.name)).toEqual(["steps_done", "steps_left"]);
  });

  it("a new file without its final newline is pending and not used", async () => {
    const dir = await newDir("pending");
    await writeFile(join(dir, "new.prom"), "x 1");
    const r = await new TextfileDir({ dir }).refresh();
    expect(r.files[0]).toMatchObject({ status: "pending", families: [] });
  });

  it("reports an invalid file whole and keeps using the others", async () => {
    const dir = await newDir("invalid");
    await writeFile(join(dir, "good.prom"), "good 1\n");
    await writeFile(join(dir, "bad.prom"), 'bad 1\nbad{x="\\q"} 2\n');
    await writeFile(
      join(dir, "latin1.prom"),
      Buffer.from([0x61, 0x7b, 0x78, 0x3d, 0x22, 0xe9, 0x22, 0x7d, 0x20, 0x31, 0x0a]),
    );
    const r = await new TextfileDir({ dir }).refresh();
    expect(r.files.map((f) => [f.name, f.status])).toEqual([
      ["bad.prom", "invalid"],
      ["good.prom", "ok"],
      ["latin1.prom", "invalid"],
    ]);
    expect(r.files[0]?.problems[0]).toMatchObject({
      file: `${dir}/bad.prom`,
      line: 2,
      metric: "bad",
    });
    expect(r.files[2]?.problems[0]?.message).toContain("not valid UTF-8");
  });

  it("never opens a FIFO or a symlink leading outside the directory, and says so", async () => {
    const dir = await newDir("special");
    execFileSync("mkfifo", [join(dir, "pipe.prom")]);
    await symlink("/etc/passwd", join(dir, "escape.prom"));
    await writeFile(join(dir, "ok.prom"), "ok 1\n");
    const r = await new TextfileDir({ dir }).refresh();
    expect(r.files.map((f) => f.name)).toEqual(["ok.prom"]);
    expect(r.warnings.join("\n")).toContain("escape.prom");
    expect(r.warnings.join("\n")).toContain("pipe.prom");
  });

  it("re-reads only changed files", async () => {
    const dir = await newDir("cache");
    await writeFile(join(dir, "a.prom"), "a 1\n");
    await writeFile(join(dir, "b.prom"), "b 1\n");
    const textfiles = new TextfileDir({ dir });
    const first = await textfiles.refresh();
    const again = await textfiles.refresh();
    expect(again.changed).toBe(false);
    expect(again.files[0]).toBe(first.files[0]);
    await writeAtomic(join(dir, "b.prom"), "b 2\n");
    const third = await textfiles.refresh();
    expect(third.changed).toBe(true);
    expect(third.files[0]).toBe(first.files[0]);
    expect(third.files[1]?.families[0]?.samples[0]?.value).toBe(2);
  });

  it("handles 200,000 series in 50 files", async () => {
    const dir = await newDir("big");
    for (const [name, text] of bigFiles(200_000, 50)) await writeFile(join(dir, name), text);
    const r = await new TextfileDir({ dir }).refresh();
    expect(r.files.filter((f) => f.status === "ok")).toHaveLength(50);
    const exposition = new ScrapeExposition();
    const report = exposition.update(r.files, r.warnings);
    expect(report.conflicts).toEqual([]);
    expect(report.series).toBe(200_000 + 50 + 1 + 3); // + mtime gauges, scrape error, conflicts
    const body = exposition.body(undefined).raw.toString();
    expect(body.split("\n").filter((l) => l.startsWith("job_metric_"))).toHaveLength(200_000);
  }, 120_000);
});
