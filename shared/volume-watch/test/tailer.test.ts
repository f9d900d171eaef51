import {
  appendFileSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import {
  type Checkpoint,
  type LineBatch,
  LineFlags,
  Tailer,
  type TailerOptions,
  type TailFileEvent,
  type VolumeWatchWarning,
} from "@buildpod/volume-watch";
import { afterEach, describe, expect, it } from "vitest";
import { collect, eventually, scratchDir, sleep } from "./helpers.ts";

const tailers: Tailer[] = [];
afterEach(async () => {
  await Promise.all(tailers.splice(0).map((t) => t.close()));
});

function create(options: TailerOptions) {
  const tailer = new Tailer({
    pollIntervalMs: 200,
    checkpointIntervalMs: 200,
    rescanIntervalMs: 1_000,
    ...options,
  });
  tailers.push(tailer);
  const events: TailFileEvent[] = [];
  const warnings: VolumeWatchWarning[] = [];
  tailer.on("file", (e) => events.push(e));
  tailer.on("warning", (w) => warnings.push(w));
  return { tailer, events, warnings };
}

// A consumer pulling in the background (as a container does), acknowledging everything.
function consume(tailer: Tailer): string[] {
  const texts: string[] = [];
  void (async () => {
    for await (const batch of tailer) {
      texts.push(...batch.lines.map((l) => l.text));
      tailer.ack(batch);
    }
  })();
  return texts;
}

function savedCheckpoints(file: string): Checkpoint[] {
  return JSON.parse(readFileSync(file, "utf8")).files;
}

describe("Tailer", () => {
  it("tails new and growing files and commits checkpoints on acknowledgement", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    writeFileSync(path.join(root, "a.log"), "a1\na2\n");
    const { tailer } = create({ root, include: ["*.log"], checkpointFile });
    await tailer.start();

    const first = await collect(tailer, (t) => t.length >= 2);
    expect(first.texts).toEqual(["a1", "a2"]);
    writeFileSync(path.join(root, "b.log"), "b1\n");
    appendFileSync(path.join(root, "a.log"), "a3\n");
    writeFileSync(path.join(root, "ignored.txt"), "nope\n");
    const more = await collect(tailer, (t) => t.length >= 2);
    expect(more.texts.sort()).toEqual(["a3", "b1"]);

    await tailer.checkpoint();
    const saved = savedCheckpoints(checkpointFile);
    expect(saved.map((c) => [c.path, c.offset]).sort()).toEqual([
      ["a.log", 9],
      ["b.log", 3],
    ]);
    const a = statSync(path.join(root, "a.log"), { bigint: true });
    expect(saved.find((c) => c.path === "a.log")).toMatchObject({
      dev: `${a.dev}`,
      ino: `${a.ino}`,
    });
  });

  it("commits only the highest contiguous offset when acks come out of order", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    writeFileSync(path.join(root, "a.log"), `${"x".repeat(99)}\n`.repeat(100)); // 10,000 bytes
    const { tailer } = create({ root, checkpointFile, chunkSize: 2_000, maxLineBytes: 1_000 });
    await tailer.start();
    const batches = [];
    for (let i = 0; i < 3; i++) batches.push(await tailer.next());
    const [b1, b2, b3] = batches as NonNullable<(typeof batches)[0]>[];
    expect([b1.endOffset, b2.endOffset, b3.endOffset]).toEqual([2_000, 4_000, 6_000]);

    tailer.ack(b3);
    tailer.ack(b2, b2.lines[4].offset);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile)[0].offset).toBe(0);
    tailer.ack(b1);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile)[0].offset).toBe(b2.lines[4].offset);
    tailer.ack(b2);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile)[0].offset).toBe(6_000);
    expect(() => tailer.ack({ ...b1 })).toThrow(/not handed out by this tailer/);
  });

  it("finishes the old file of a rotation by rename before reading the new one", async () => {
    const { root } = scratchDir();
    const log = path.join(root, "app.log");
    writeFileSync(log, "old 1\n");
    const { tailer, events } = create({ root, include: ["*.log"], rotateWaitMs: 500 });
    await tailer.start();
    const texts = consume(tailer);
    await eventually(() => texts.length === 1);

    // logrotate's default: rename, create a new file; the writer still has the old one open.
    renameSync(log, `${log}.1`);
    appendFileSync(`${log}.1`, "old 2\nold 3\n");
    writeFileSync(log, "new 1\n");
    appendFileSync(log, "new 2\n");

    await eventually(() => texts.length >= 5, 10_000, "all lines");
    expect(texts).toEqual(["old 1", "old 2", "old 3", "new 1", "new 2"]);
    const rotated = events.find((e) => e.type === "rotated");
    expect(rotated).toMatchObject({ path: "app.log" });
    await eventually(
      () => events.some((e) => e.type === "closed" && e.fileId === rotated?.fileId),
      10_000,
      "old file closed",
    );
    expect(tailer.stats().files).toBe(1);
  });

  it("follows a rotated file to a name the globs also include, reading nothing twice", async () => {
    const { root } = scratchDir();
    const log = path.join(root, "app.log");
    writeFileSync(log, "old 1\n");
    const { tailer, events } = create({ root, include: ["app.log*"], rotateWaitMs: 200 });
    await tailer.start();
    const texts = consume(tailer);
    await eventually(() => texts.length === 1);

    renameSync(log, `${log}.1`);
    appendFileSync(`${log}.1`, "old 2\n");
    writeFileSync(log, "new 1\n");
    await eventually(() => texts.length >= 3, 10_000, "three lines");
    await sleep(1_000); // polls and a rescan pass: nothing may be read again
    appendFileSync(`${log}.1`, "old 3\n");
    await eventually(() => texts.length >= 4, 10_000, "late line of the rotated file");
    await sleep(500);

    expect([...texts].sort()).toEqual(["new 1", "old 1", "old 2", "old 3"]);
    expect(texts.indexOf("old 2")).toBeLessThan(texts.indexOf("new 1"));
    expect(events.filter((e) => e.type === "rotated")).toHaveLength(1);
    expect(tailer.stats().files).toBe(2);
  });

  it("reads a file deleted mid-read to its end", async () => {
    const { root } = scratchDir();
    const log = path.join(root, "app.log");
    const lines = Array.from({ length: 5_000 }, (_, i) => `line ${i}`);
    writeFileSync(log, `${lines.join("\n")}\n`);
    const { tailer, events } = create({ root, chunkSize: 4_096 });
    await tailer.start();
    const first = await tailer.next();
    unlinkSync(log);
    if (first) tailer.ack(first);

    const texts = first?.lines.map((l) => l.text) ?? [];
    const rest = consume(tailer);
    await eventually(() => events.some((e) => e.type === "closed"), 10_000, "deleted file closed");
    expect([...texts, ...rest]).toEqual(lines);
    expect(events.map((e) => e.type)).toEqual(["opened", "deleted", "closed"]);
    expect(tailer.stats().files).toBe(0);
  });

  it("reads a line longer than a chunk in one go, without waiting for a poll", async () => {
    const { root } = scratchDir();
    const long = "q".repeat(20_000);
    writeFileSync(path.join(root, "a.log"), `${long}\nend\n`);
    const { tailer } = create({
      root,
      chunkSize: 1024,
      maxLineBytes: 65_536,
      pollIntervalMs: 60_000,
    });
    await tailer.start();
    const { texts } = await collect(tailer, (t) => t.length >= 2, 10_000);
    expect(texts).toEqual([long, "end"]);
  });

  it("restarts at 0 after a truncation and reports it", async () => {
    const { root } = scratchDir();
    const log = path.join(root, "app.log");
    writeFileSync(log, "before 1\nbefore 2\n");
    const { tailer, events } = create({ root });
    await tailer.start();
    await collect(tailer, (t) => t.length >= 2);

    truncateSync(log, 0); // copytruncate
    appendFileSync(log, "after\n");
    const { batches } = await collect(tailer, (t) => t.includes("after"));
    expect(batches.at(-1)?.lines.at(-1)).toEqual({ text: "after", offset: 6, flags: 0 });
    expect(events.filter((e) => e.type === "truncated")).toHaveLength(1);
  });

  it("delivers a partial last line once, whole, across a restart", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    const log = path.join(root, "app.log");
    writeFileSync(log, "complete\npart");

    const first = create({ root, checkpointFile });
    await first.tailer.start();
    expect((await collect(first.tailer, (t) => t.length >= 1)).texts).toEqual(["complete"]);
    await sleep(300); // give the reader time to see (and hold) the partial line
    expect(first.tailer.stats().bufferedBytes).toBe(4); // "part", held back, nothing unacked
    await first.tailer.close(); // a restart: no drain

    appendFileSync(log, "ial line\nnext\n");
    const second = create({ root, checkpointFile });
    await second.tailer.start();
    const { texts, batches } = await collect(second.tailer, (t) => t.length >= 2);
    expect(texts).toEqual(["partial line", "next"]);
    expect(batches[0].lines[0]).toEqual({ text: "partial line", offset: 22, flags: 0 });
    expect(second.events.find((e) => e.type === "opened")).toMatchObject({
      offset: 9,
      restored: true,
    });
  });

  it("delivers partial last lines at the drain, marked, then ends", async () => {
    const { root } = scratchDir();
    writeFileSync(path.join(root, "a.log"), "one\ntwo");
    const { tailer } = create({ root });
    await tailer.start();
    expect((await collect(tailer, (t) => t.length >= 1)).texts).toEqual(["one"]);
    writeFileSync(path.join(root, "late.log"), "written just before the end\n");

    tailer.drain();
    const lines = [];
    for await (const batch of tailer) {
      lines.push(...batch.lines.map((l) => [l.text, l.flags]));
      tailer.ack(batch);
    }
    expect(lines.sort()).toEqual([
      ["two", LineFlags.NO_NEWLINE],
      ["written just before the end", 0],
    ]);
    expect(await tailer.next()).toBeUndefined();
  });

  it("recovers from a torn checkpoint file with a warning and reads from the start", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    writeFileSync(path.join(root, "a.log"), "a1\na2\n");
    writeFileSync(checkpointFile, '{"version":1,"files":[{"path":"a.log","dev":"1","ino":');
    const { tailer, warnings } = create({ root, checkpointFile });
    await tailer.start();
    expect((await collect(tailer, (t) => t.length >= 2)).texts).toEqual(["a1", "a2"]);
    expect(warnings.map((w) => w.code)).toEqual(["checkpoint-corrupt"]);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile)).toHaveLength(1);
  });

  it("does not trust a checkpoint whose inode matches but whose first bytes do not", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    const log = path.join(root, "a.log");
    writeFileSync(log, "a brand new file on a reused inode\n");
    const st = statSync(log, { bigint: true });
    const stale: Checkpoint = {
      path: "old.log",
      dev: `${st.dev}`,
      ino: `${st.ino}`,
      fingerprint: { bytes: 10, hash: "0".repeat(32) },
      offset: 20,
    };
    writeFileSync(checkpointFile, JSON.stringify({ version: 1, files: [stale] }));
    const { tailer, warnings } = create({ root, checkpointFile });
    await tailer.start();
    expect((await collect(tailer, (t) => t.length >= 1)).texts).toEqual([
      "a brand new file on a reused inode",
    ]);
    expect(warnings.map((w) => w.code)).toEqual(["checkpoint-mismatch"]);
  });

  it("starts files found at start without a checkpoint at their end with startAt: end", async () => {
    const { root } = scratchDir();
    writeFileSync(path.join(root, "old.log"), "history\n");
    const { tailer } = create({ root, startAt: "end" });
    await tailer.start();
    appendFileSync(path.join(root, "old.log"), "fresh\n");
    writeFileSync(path.join(root, "new.log"), "all of a new file\n");
    const { texts } = await collect(tailer, (t) => t.length >= 2);
    expect(texts.sort()).toEqual(["all of a new file", "fresh"]);
  });

  it("reads from 0 a file that shrank below its checkpoint while stopped", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    const log = path.join(root, "a.log");
    const head = "h".repeat(1100); // longer than the fingerprint
    writeFileSync(log, `${head}\nline two\n`);
    const first = create({ root, checkpointFile });
    await first.tailer.start();
    await collect(first.tailer, (t) => t.length >= 2);
    await first.tailer.close();

    // copytruncate while we were down: same first bytes, now shorter than the checkpoint.
    truncateSync(log, 0);
    writeFileSync(log, `${head}\n`);
    const second = create({ root, checkpointFile });
    await second.tailer.start();
    const { texts } = await collect(second.tailer, (t) => t.length >= 1);
    expect(texts).toEqual([head]);
    expect(second.events.map((e) => e.type)).toEqual(["opened", "truncated"]);
    expect(second.warnings).toEqual([]);
  });

  it("pauses reading while the consumer never acknowledges, keeping its buffer bounded", async () => {
    const { root } = scratchDir();
    const line = `${"z".repeat(199)}\n`;
    writeFileSync(path.join(root, "big.log"), line.repeat(100_000)); // 20 MB backlog
    const budget = 1024 * 1024;
    const chunkSize = 128 * 1024;
    const maxLineBytes = 16 * 1024;
    const { tailer } = create({ root, maxBufferedBytes: budget, chunkSize, maxLineBytes });
    await tailer.start();

    // Take batches and never acknowledge them, until the tailer says it has paused (a slow
    // read on a loaded machine is not taken for a pause).
    const held: LineBatch[] = [];
    let pending = tailer.next();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const batch = await Promise.race([pending, sleep(500).then(() => "waiting" as const)]);
      if (batch === "waiting") {
        if (tailer.stats().paused) break;
        continue;
      }
      if (batch) held.push(batch);
      pending = tailer.next();
    }
    const stats = tailer.stats();
    expect(stats.paused).toBe(true);
    expect(stats.unackedBytes).toBeGreaterThanOrEqual(budget);
    expect(stats.bufferedBytes).toBeLessThanOrEqual(budget + chunkSize + maxLineBytes);
    expect(stats.bytesRead).toBeLessThan(4 * budget);
    await sleep(1_000); // still paused a while later: nothing more was read
    expect(tailer.stats().bytesRead).toBe(stats.bytesRead);

    // Acknowledging releases the budget and reading resumes.
    for (const batch of held) tailer.ack(batch);
    const resumed = await pending;
    expect(resumed?.startOffset).toBe(held.at(-1)?.endOffset);
    expect(tailer.stats().paused).toBe(false);
  });

  it("hands out lines as bytes with nextRaw, acked and drained like text batches", async () => {
    const { root, state } = scratchDir();
    const checkpointFile = path.join(state, "checkpoints.json");
    writeFileSync(path.join(root, "a.log"), 'one\n"two"\tgr\u00fc\u00dfe\nthr');
    const { tailer } = create({ root, checkpointFile });
    await tailer.start();

    const lines: [string, number, number][] = [];
    const take = async () => {
      const raw = await tailer.nextRaw();
      if (!raw) return false;
      for (let i = 0; i < raw.count; i++) {
        const end = i + 1 < raw.count ? raw.startOffset + raw.starts[i + 1] : raw.endOffset;
        lines.push([raw.data.toString("utf8", raw.starts[i], raw.ends[i]), end, raw.flags[i]]);
      }
      tailer.ack(raw);
      return true;
    };
    await take();
    expect(lines).toEqual([
      ["one", 4, 0],
      ['"two"\tgr\u00fc\u00dfe', 18, 0],
    ]);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile).map((c) => c.offset)).toEqual([18]);

    // The drain delivers the partial last line, marked, then the tailer ends.
    tailer.drain();
    while (await take());
    expect(lines.at(-1)).toEqual(["thr", 21, LineFlags.NO_NEWLINE]);
    await tailer.checkpoint();
    expect(savedCheckpoints(checkpointFile).map((c) => c.offset)).toEqual([21]);
  });
});
