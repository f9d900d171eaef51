import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import path from "node:path";
import {
  type FileInfo,
  openInsideRoot,
  TreeWatcher,
  type VolumeWatchWarning,
  walkAll,
} from "@buildpod/volume-watch";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, scratchDir } from "./helpers.ts";

const watchers: TreeWatcher[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

function track(watcher: TreeWatcher) {
  watchers.push(watcher);
  const added = new Map<string, FileInfo>();
  const changed: string[] = [];
  const removed: string[] = [];
  const warnings: VolumeWatchWarning[] = [];
  watcher.on("add", (f) => added.set(f.path, f));
  watcher.on("change", (f) => changed.push(f.path));
  watcher.on("unlink", (f) => removed.push(f.path));
  watcher.on("warning", (w) => warnings.push(w));
  return { added, changed, removed, warnings };
}

function mkfifo(file: string): void {
  // coreutils' mkfifo: part of every Debian base system.
  execFileSync("mkfifo", [file]);
}

describe("TreeWatcher", () => {
  it("reports existing and new files as relative / paths, then changes and removals", async () => {
    const { root } = scratchDir();
    mkdirSync(path.join(root, "a", "b"), { recursive: true });
    writeFileSync(path.join(root, "a", "b", "old.log"), "x");
    const watcher = new TreeWatcher({ root, rescanIntervalMs: 500 });
    const seen = track(watcher);

    await watcher.start();
    expect([...seen.added.keys()]).toEqual(["a/b/old.log"]);
    expect(seen.added.get("a/b/old.log")).toMatchObject({
      size: 1,
      absolutePath: path.join(root, "a/b/old.log"),
    });

    writeFileSync(path.join(root, "a", "new.log"), "y");
    appendFileSync(path.join(root, "a", "b", "old.log"), "more");
    await eventually(() => seen.added.has("a/new.log") && seen.changed.includes("a/b/old.log"));
    unlinkSync(path.join(root, "a", "new.log"));
    await eventually(() => seen.removed.includes("a/new.log"));
    expect(watcher.files().map((f) => f.path)).toEqual(["a/b/old.log"]);
  });

  it("has reported every difference by the time a rescan resolves, events or not", async () => {
    const { root } = scratchDir();
    writeFileSync(path.join(root, "gone.txt"), "");
    writeFileSync(path.join(root, "grows.txt"), "");
    const watcher = new TreeWatcher({ root, rescanIntervalMs: 0 });
    const seen = track(watcher);
    await watcher.start();

    mkdirSync(path.join(root, "new-dir"));
    writeFileSync(path.join(root, "new-dir", "new.txt"), "");
    unlinkSync(path.join(root, "gone.txt"));
    appendFileSync(path.join(root, "grows.txt"), "more");
    await watcher.rescan();

    expect(seen.added.has("new-dir/new.txt")).toBe(true);
    expect(seen.removed).toContain("gone.txt");
    expect(seen.changed).toContain("grows.txt");
    expect(
      watcher
        .files()
        .map((f) => f.path)
        .sort(),
    ).toEqual(["grows.txt", "new-dir/new.txt"]);
  });

  it("sees all of 1,000 files created at once", async () => {
    const { root } = scratchDir();
    const watcher = new TreeWatcher({ root, rescanIntervalMs: 2_000 });
    const seen = track(watcher);
    await watcher.start();

    const names = Array.from({ length: 1000 }, (_, i) => `dir${i % 10}/file-${i}.txt`);
    for (let d = 0; d < 10; d++) mkdirSync(path.join(root, `dir${d}`));
    await Promise.all(names.map((n) => writeFile(path.join(root, n), n)));

    await eventually(() => seen.added.size === 1000, 30_000, "1,000 files");
    expect([...seen.added.keys()].sort()).toEqual([...names].sort());
    expect(seen.warnings).toEqual([]);
  });

  it("applies include and exclude globs relative to the root", async () => {
    const { root } = scratchDir();
    for (const dir of ["logs", "logs/deep", "node_modules/pkg"])
      mkdirSync(path.join(root, dir), { recursive: true });
    for (const file of [
      "logs/a.log",
      "logs/deep/b.log",
      "logs/c.txt",
      "node_modules/pkg/d.log",
      ".hidden.log",
    ]) {
      writeFileSync(path.join(root, file), "");
    }
    const filter = { root, include: ["**/*.log"], exclude: ["node_modules"] };
    const watcher = new TreeWatcher({ ...filter, rescanIntervalMs: 0 });
    const seen = track(watcher);
    await watcher.start();
    const expected = [".hidden.log", "logs/a.log", "logs/deep/b.log"];
    expect([...seen.added.keys()].sort()).toEqual(expected);
    expect((await walkAll(filter)).map((f) => f.path).sort()).toEqual(expected);

    writeFileSync(path.join(root, "node_modules/pkg/e.log"), "");
    writeFileSync(path.join(root, "logs/f.log"), "");
    await eventually(() => seen.added.has("logs/f.log"));
    expect(seen.added.has("node_modules/pkg/e.log")).toBe(false);
  });

  it("never follows a symlink that escapes the root, and reads one that stays inside", async () => {
    const { dir, root } = scratchDir();
    const secret = path.join(dir, "secret.txt");
    writeFileSync(secret, "do not upload");
    writeFileSync(path.join(root, "real.txt"), "inside");
    symlinkSync(secret, path.join(root, "escape.txt"));
    symlinkSync("../../", path.join(root, "up"));
    symlinkSync("real.txt", path.join(root, "alias.txt"));

    const watcher = new TreeWatcher({ root, rescanIntervalMs: 0 });
    const seen = track(watcher);
    await watcher.start();
    symlinkSync("/etc/passwd", path.join(root, "later.txt"));
    await eventually(() => seen.warnings.some((w) => w.path === "later.txt"));

    expect([...seen.added.keys()].sort()).toEqual(["alias.txt", "real.txt"]);
    const escaped = seen.warnings
      .filter((w) => w.code === "symlink-outside-root")
      .map((w) => w.path);
    expect(escaped.sort()).toEqual(["escape.txt", "later.txt", "up"]);
    expect((await walkAll({ root })).map((f) => f.path).sort()).toEqual(["alias.txt", "real.txt"]);
    await expect(openInsideRoot(root, "escape.txt")).rejects.toThrow(/outside the root/);
    await expect(openInsideRoot(root, "../secret.txt")).rejects.toThrow(/outside the root/);
    const { handle, info } = await openInsideRoot(root, "alias.txt");
    expect(info.size).toBe(6);
    await handle.close();
  });

  it("skips a FIFO without opening it (which would block), and a socket", async () => {
    const { root } = scratchDir();
    mkfifo(path.join(root, "pipe"));
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path.join(root, "sock"), resolve));
    servers.push(server);
    writeFileSync(path.join(root, "file.txt"), "");
    const watcher = new TreeWatcher({ root, rescanIntervalMs: 0 });
    const seen = track(watcher);
    await watcher.start();
    mkfifo(path.join(root, "pipe2"));
    await eventually(() => seen.warnings.some((w) => w.path === "pipe2"));

    expect([...seen.added.keys()]).toEqual(["file.txt"]);
    expect(seen.warnings.map((w) => [w.code, w.path]).sort()).toEqual([
      ["special-file", "pipe"],
      ["special-file", "pipe2"],
      ["special-file", "sock"],
    ]);
    expect((await walkAll({ root })).map((f) => f.path)).toEqual(["file.txt"]);
    await expect(openInsideRoot(root, "pipe")).rejects.toThrow(/not a regular file/);
  });

  it("fails to start with a clear error when the root is missing", async () => {
    const { dir } = scratchDir();
    const watcher = new TreeWatcher({ root: path.join(dir, "nope") });
    watchers.push(watcher);
    await expect(watcher.start()).rejects.toThrow(/could not watch .*nope.*mount the volume/);
  });
});
