import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SWEEP_GROUP, sweep } from "@buildpod/artifact-uploader";
import type { FileInfo, VolumeWatchWarning } from "@buildpod/volume-watch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("the drain's final sweep", () => {
  let root: string;
  const dirs = 30;
  const perDir = 10;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "sweep-"));
    for (let d = 0; d < dirs; d++) {
      await mkdir(path.join(root, `d${d}`));
      for (let f = 0; f < perDir; f++) await writeFile(path.join(root, `d${d}`, `f${f}.txt`), "x");
    }
    await writeFile(path.join(root, "d0", "skip.tmp"), "x");
    await symlink("/etc/passwd", path.join(root, "passwd"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("hands over every included file in full groups, and warns about unsafe entries", async () => {
    const groups: FileInfo[][] = [];
    const warnings: VolumeWatchWarning[] = [];
    const filter = { root, include: ["**"], exclude: ["**/*.tmp"] };
    const found = await sweep(
      filter,
      new AbortController().signal,
      (g) => groups.push(g),
      (w) => warnings.push(w),
    );
    expect(found).toBe(dirs * perDir);
    expect(groups.slice(0, -1).every((g) => g.length === SWEEP_GROUP)).toBe(true);
    const paths = groups.flat().map((f) => f.path);
    expect(new Set(paths).size).toBe(dirs * perDir);
    expect(paths).not.toContain("d0/skip.tmp");
    expect(warnings.map((w) => [w.code, w.path])).toEqual([["symlink-outside-root", "passwd"]]);
  });

  it("stops walking when the drain deadline passes", async () => {
    const deadline = new AbortController();
    const groups: FileInfo[][] = [];
    const found = await sweep(
      { root },
      deadline.signal,
      (g) => {
        groups.push(g);
        deadline.abort(); // the deadline passes while the first group is handed over
      },
      () => {},
    );
    expect(groups.length).toBe(1);
    expect(found).toBeLessThan(dirs * perDir);

    const late = await sweep(
      { root },
      AbortSignal.abort(),
      () => {},
      () => {},
    );
    expect(late).toBe(0);
  });
});
