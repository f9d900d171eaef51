import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CompletionWatcher, type FileInfo } from "@buildpod/volume-watch";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, scratchDir, sleep } from "./helpers.ts";

const watchers: CompletionWatcher[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
});

function start(options: ConstructorParameters<typeof CompletionWatcher>[0]) {
  const watcher = new CompletionWatcher(options);
  watchers.push(watcher);
  const complete: { file: FileInfo; at: number }[] = [];
  watcher.on("complete", (file) => complete.push({ file, at: Date.now() }));
  return { watcher, complete };
}

describe("CompletionWatcher", () => {
  it("does not report a file written slowly over 5 s as complete before the writer stops", async () => {
    const { root } = scratchDir();
    const { watcher, complete } = start({ root, quietPeriodMs: 2_000 });
    await watcher.start();

    const file = path.join(root, "report.xml");
    writeFileSync(file, "<testsuites>\n");
    // One small write every 250 ms for 5 s: never quiet for 2 s.
    for (let i = 0; i < 20; i++) {
      await sleep(250);
      appendFileSync(file, `<testcase name="t${i}"/>\n`);
    }
    const lastWrite = Date.now();
    appendFileSync(file, "</testsuites>\n");

    await eventually(() => complete.length > 0, 20_000, "completion");
    expect(complete).toHaveLength(1);
    expect(complete[0].file.path).toBe("report.xml");
    expect(complete[0].file.size).toBe(statSync(file).size);
    expect(complete[0].at).toBeGreaterThanOrEqual(lastWrite);
    expect(watcher.pending()).toEqual([]);
  });

  it("reports a file again when it changes after being complete", async () => {
    const { root } = scratchDir();
    writeFileSync(path.join(root, "a.txt"), "1");
    const { watcher, complete } = start({ root, quietPeriodMs: 200 });
    await watcher.start();
    await eventually(() => complete.length === 1);
    appendFileSync(path.join(root, "a.txt"), "2");
    await eventually(() => complete.length === 2);
    expect(complete.map((c) => c.file.size)).toEqual([1, 2]);
  });

  it("final sweep returns every file not yet reported, with the same filters", async () => {
    const { root } = scratchDir();
    mkdirSync(path.join(root, "out"));
    writeFileSync(path.join(root, "out", "done.bin"), "done");
    writeFileSync(path.join(root, "skip.tmp"), "tmp");
    execFileSync("mkfifo", [path.join(root, "out", "pipe")]);
    symlinkSync("/etc/hostname", path.join(root, "out", "escape"));
    const { watcher, complete } = start({ root, exclude: ["**/*.tmp"], quietPeriodMs: 300 });
    const warnings: string[] = [];
    watcher.on("warning", (w) => warnings.push(`${w.code} ${w.path}`));
    await watcher.start();
    await eventually(() => complete.length === 1);

    // Still being written when the workload finishes: the sweep hands it over anyway.
    writeFileSync(path.join(root, "out", "late.bin"), "late");
    const swept = await watcher.finalSweep();
    expect(swept.map((f) => f.path)).toEqual(["out/late.bin"]);
    expect(await watcher.finalSweep()).toEqual([]); // nothing twice
    expect(complete.map((c) => c.file.path)).toEqual(["out/done.bin"]);
    expect(warnings.sort()).toEqual(["special-file out/pipe", "symlink-outside-root out/escape"]);
  });
});
