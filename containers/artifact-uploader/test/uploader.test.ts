import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { type ArtifactStore, DirStore, type UploadSource } from "@buildpod/artifact-store";
import { Uploader, type UploaderEvent } from "@buildpod/artifact-uploader";
import { type FileInfo, walkAll } from "@buildpod/volume-watch";
import { describe, expect, it } from "vitest";
import { startUploader, waitFor, withFakeBuildkite, workspace } from "./helpers.ts";

const t = withFakeBuildkite();
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

describe("artifact-uploader", () => {
  it("waits for a file written slowly over 10 s and uploads it once, whole", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const up = startUploader(t.bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, ARTIFACT_UPLOADER_QUIET_PERIOD: "2s" },
    });
    const file = path.join(ws.root, "slow.log");
    let content = "";
    for (let i = 0; i < 20; i++) {
      const line = `line ${i}\n`;
      content += line;
      await appendFile(file, line);
      await new Promise((r) => setTimeout(r, 500));
    }
    await waitFor("the slow file", () => t.bk.finished(job.id).has("slow.log"));
    const r = await up.finish();
    expect(r.code).toBe(0);
    const uploads = t.bk.artifacts.filter((a) => a.jobId === job.id && a.path === "slow.log");
    expect(uploads).toHaveLength(1);
    expect(uploads[0]?.stored?.sha256).toBe(sha256(content));
  }, 60_000);

  it("keeps odd names exactly, skips unsafe symlinks and FIFOs, survives deletions", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const odd = ["with space.txt", "ünïcødé/ñ.txt", "hash#1.txt", "100%.txt", "new\nline.txt"];
    await mkdir(path.join(ws.root, "ünïcødé"));
    for (const name of odd) await writeFile(path.join(ws.root, name), `is ${name}`);
    await symlink("/etc/passwd", path.join(ws.root, "passwd"));
    await symlink(path.dirname(ws.root), path.join(ws.root, "outside-dir"));
    await writeFile(path.join(ws.root, "target.txt"), "inside");
    await symlink("target.txt", path.join(ws.root, "inside-link.txt"));
    execFileSync("mkfifo", [path.join(ws.root, "pipe")]);
    await writeFile(path.join(ws.root, "notes.txt.swp"), "editor");
    await writeFile(path.join(ws.root, "gone.txt"), "soon gone");

    const up = startUploader(t.bk, ws, {
      env: { BUILDKITE_JOB_ID: job.id, ARTIFACT_UPLOADER_QUIET_PERIOD: "1s" },
    });
    await new Promise((r) => setTimeout(r, 300));
    await unlink(path.join(ws.root, "gone.txt"));
    await waitFor("the odd names", () => odd.every((n) => t.bk.finished(job.id).has(n)));
    const r = await up.finish();
    // Everything else was uploaded; the refused entries make the exit code 4.
    expect(r.code).toBe(4);
    const refused = (r.summary.refused as { path: string }[]).map((x) => x.path).sort();
    expect(refused).toEqual(["outside-dir", "passwd", "pipe"]);
    const paths = [...t.bk.finished(job.id).keys()].sort();
    expect(paths).toEqual([...odd, "inside-link.txt", "target.txt"].sort());
    for (const name of odd) {
      expect(t.bk.finished(job.id).get(name)?.stored?.sha256).toBe(sha256(`is ${name}`));
    }
    const passwd = await readFile("/etc/passwd");
    expect(t.bk.artifacts.some((a) => a.stored && a.stored.sha256 === sha256(passwd))).toBe(false);
    const warned = r.lines.filter((l) => l.code === "symlink-outside-root").map((l) => l.path);
    expect([...new Set(warned)].sort()).toEqual(["outside-dir", "passwd"]);
    expect(r.lines.some((l) => l.code === "special-file" && l.path === "pipe")).toBe(true);
  }, 60_000);

  it("uploads a file again at the drain when it changed after its upload", async () => {
    const ws = await workspace(t.base);
    const job = t.newJob();
    const up = startUploader(t.bk, ws, { env: { BUILDKITE_JOB_ID: job.id } });
    const file = path.join(ws.root, "report.json");
    await writeFile(file, '{"v":1}');
    await waitFor("the first upload", () => t.bk.finished(job.id).has("report.json"));
    await writeFile(file, '{"v":2}');
    await new Promise((r) => setTimeout(r, 1_000));
    const r = await up.finish();
    expect(r.code).toBe(0);
    expect(r.summary.reuploaded).toEqual(["report.json"]);
    expect(t.bk.finished(job.id).get("report.json")?.stored?.sha256).toBe(sha256('{"v":2}'));
    expect(existsSync(file)).toBe(true);
  }, 60_000);
});

describe("Uploader (the queue on its own)", () => {
  it("counts a file deleted after it was seen as vanished, not failed", async () => {
    const ws = await workspace(t.base);
    await writeFile(path.join(ws.root, "kept.txt"), "kept");
    await writeFile(path.join(ws.root, "gone.txt"), "gone");
    const seen = await walkAll({ root: ws.root });
    await unlink(path.join(ws.root, "gone.txt"));

    const events: UploaderEvent[] = [];
    const store = new DirStore({ root: path.join(ws.dir, "store") });
    const uploader = new Uploader({
      store,
      root: ws.root,
      batchSize: 30,
      batches: 1,
      retryDelayMs: 100,
      onEvent: (e) => events.push(e),
    });
    for (const file of seen) uploader.enqueue(file);
    const report = await uploader.drain([], AbortSignal.timeout(30_000));
    expect(report).toMatchObject({ uploaded: 1, vanished: 1, leftOver: [], refused: [] });
    expect(events.map((e) => e.type).sort()).toEqual(["uploaded", "vanished"]);
    expect(await readFile(path.join(ws.dir, "store", "kept.txt"), "utf8")).toBe("kept");
  });

  /** A store that refuses each upload of a file (a 4xx) while `refuse` says so. */
  function refusingStore(refuse: (f: UploadSource) => boolean): ArtifactStore {
    return {
      name: "refusing",
      uploadBatch: async (files) =>
        files.map((f) =>
          refuse(f)
            ? { path: f.path, ok: false, retryable: false, error: new Error(`no ${f.size}`) }
            : { path: f.path, ok: true, artifactId: f.path, bytes: f.size },
        ),
      search: async () => [],
      open: async () => {
        throw new Error("not used");
      },
      close: async () => {},
    };
  }

  async function settle(uploader: Uploader, file: FileInfo) {
    uploader.enqueue(file);
    await waitFor("the upload to settle", () => uploader.pending === 0);
    await new Promise((r) => setTimeout(r, 20));
  }

  it("lists a refused path once, and not at all once a later version uploaded", async () => {
    const ws = await workspace(t.base);
    const file = path.join(ws.root, "r.txt");
    const options = { root: ws.root, batchSize: 30, batches: 1, retryDelayMs: 100 };
    // Refused in every state: listed once, with the latest error.
    const always = new Uploader({ ...options, store: refusingStore(() => true) });
    for (const content of ["one", "three", "fiver"]) {
      await writeFile(file, content);
      const [seen] = await walkAll({ root: ws.root });
      await settle(always, seen as FileInfo);
    }
    const refused = await always.drain([], AbortSignal.timeout(30_000));
    expect(refused.refused).toEqual([{ path: "r.txt", error: "no 5" }]);

    // Refused while small, uploaded once it grew: not refused in the end, so no exit 4.
    const later = new Uploader({ ...options, store: refusingStore((f) => f.size < 4) });
    await writeFile(file, "abc");
    await settle(later, (await walkAll({ root: ws.root }))[0] as FileInfo);
    await writeFile(file, "abcdef");
    const [grown] = await walkAll({ root: ws.root });
    const report = await later.drain([grown as FileInfo], AbortSignal.timeout(30_000));
    expect(report).toMatchObject({ uploaded: 1, refused: [], leftOver: [] });
  });

  it("counts a queued file deleted before its upload as vanished", async () => {
    const ws = await workspace(t.base);
    await writeFile(path.join(ws.root, "gone.txt"), "gone");
    const [seen] = await walkAll({ root: ws.root });
    const events: UploaderEvent[] = [];
    const uploader = new Uploader({
      store: refusingStore(() => false),
      root: ws.root,
      batchSize: 30,
      batches: 1,
      retryDelayMs: 100,
      onEvent: (e) => events.push(e),
    });
    // Queued, then deleted before its batch started (in the same turn, so that no batch takes
    // it first): the watcher's unlink event reaches `forget`.
    await unlink(path.join(ws.root, "gone.txt"));
    uploader.enqueue(seen as FileInfo);
    uploader.forget("gone.txt");
    const report = await uploader.drain([], AbortSignal.timeout(30_000));
    expect(report).toMatchObject({ uploaded: 0, vanished: 1, leftOver: [], refused: [] });
    expect(events).toEqual([{ type: "vanished", path: "gone.txt" }]);
  });
});
