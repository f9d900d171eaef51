import { createHash } from "node:crypto";
import { mkdir, open, readFile, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startUploader, waitFor, withFakeBuildkite, workspace } from "./helpers.ts";

const t = withFakeBuildkite();
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

describe("artifact-uploader under volume", () => {
  it("uploads 2,000 files appearing at once, reading them only", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const up = startUploader(t.bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    for (let d = 0; d < 20; d++) {
      await mkdir(path.join(ws.root, `d${d}`));
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          writeFile(path.join(ws.root, `d${d}`, `f${i}.txt`), `file ${d}/${i}\n`),
        ),
      );
    }
    await waitFor("2,000 uploads", () => t.bk.finished(job.id).size === 2000, 120_000);
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.summary.uploaded).toBe(2000);
    const one = t.bk.finished(job.id).get("d7/f42.txt");
    expect(one?.stored?.sha256).toBe(sha256("file 7/42\n"));
    expect(one?.content_type).toBe("text/plain");
    expect(await readFile(path.join(ws.root, "d7/f42.txt"), "utf8")).toBe("file 7/42\n");
  }, 180_000);

  it("uploads a 1 GiB file in parts", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const file = path.join(ws.root, "big.bin");
    // Sparse: 1 GiB of zeros with a marker at the start and end, created without writing it.
    await writeFile(file, "head");
    await truncate(file, 1024 ** 3);
    const fh = await open(file, "r+");
    await fh.write("tail", 1024 ** 3 - 4);
    await fh.close();
    // The fake checks each part's size and ETag but keeps no bytes: 1 GiB stays off its disk.
    // Hashing 1 GiB twice over (SHA-1, SHA-256) takes seconds of CPU: a loaded machine needs room.
    t.bk.keepParts = false;
    const up = startUploader(t.bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, BUILDPOD_DRAIN_TIMEOUT: "170s" },
    });
    const r = await up.finish();
    t.bk.keepParts = true;
    expect(r.code).toBe(0);
    const a = t.bk.finished(job.id).get("big.bin");
    expect(a?.multipart?.parts).toHaveLength(8);
    expect(a?.stored?.size).toBe(1024 ** 3);
    expect(a?.sha256sum).toMatch(/^[0-9a-f]{64}$/);
  }, 180_000);
});
