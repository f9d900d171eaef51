import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { KEEP_CONTENT_LIMIT } from "@buildpod/artifact-store";
import { prepare } from "@buildpod/artifact-uploader";
import type { FileInfo } from "@buildpod/volume-watch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** What the watcher would have reported for `rel`: only the path and the size matter here. */
function seen(root: string, rel: string, size: number): FileInfo {
  const absolutePath = path.join(root, rel);
  return { path: rel, absolutePath, size, mtimeMs: 0, dev: "0", ino: "0", id: "0:0" };
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("prepare", () => {
  let base: string;
  let root: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), "prepare-"));
    root = path.join(base, "root");
    await mkdir(path.join(root, "sub"), { recursive: true });
    await writeFile(path.join(base, "secret"), "outside");
    await writeFile(path.join(root, "sub", "small.txt"), "hello");
    await symlink(path.join(base, "secret"), path.join(root, "escape"));
    await symlink("sub/small.txt", path.join(root, "inside-link"));
    execFileSync("mkfifo", [path.join(root, "fifo")]);
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  // Each case runs through the blocking small-file path (the root's real path given) and the
  // streaming one (not given): both must apply the same rules.
  for (const realRoot of [true, false]) {
    const via = realRoot ? "read whole" : "streamed";
    const run = (rel: string, size: number) =>
      prepare(root, seen(root, rel, size), undefined, undefined, realRoot ? root : undefined);

    it(`keeps a small file's bytes and sums (${via})`, async () => {
      const p = await run("sub/small.txt", 5);
      expect(p.source.content?.toString()).toBe("hello");
      expect(p.source.sha256).toBe(sha256(Buffer.from("hello")));
      expect(p.info.size).toBe(5);
      expect(p.source.contentType).toBe("text/plain");
      await p.close();
    });

    it(`follows a symlink that stays inside the root (${via})`, async () => {
      const p = await run("inside-link", 5);
      expect(p.source.content?.toString()).toBe("hello");
      await p.close();
    });

    it(`refuses a symlink leading outside and a FIFO, without blocking (${via})`, async () => {
      await expect(run("escape", 7)).rejects.toMatchObject({ code: "EOUTSIDEROOT" });
      await expect(run("fifo", 0)).rejects.toMatchObject({ code: "ENOTREGULAR" });
    });

    it(`says a vanished file is gone (${via})`, async () => {
      await expect(run("sub/gone.txt", 1)).rejects.toMatchObject({ code: "ENOENT" });
    });
  }

  it("streams a file that grew past the in-memory limit since it was seen", async () => {
    const big = Buffer.alloc(KEEP_CONTENT_LIMIT + 10, 7);
    await writeFile(path.join(root, "grew.bin"), big);
    const p = await prepare(root, seen(root, "grew.bin", 10), undefined, undefined, root);
    expect(p.source.content).toBeUndefined();
    expect(p.info.size).toBe(big.length);
    expect(p.source.sha256).toBe(sha256(big));
    await p.close();
  });
});
