import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type Checkpoint, CheckpointStore, type VolumeWatchWarning } from "@buildpod/volume-watch";
import { describe, expect, it } from "vitest";
import { AckTrack } from "../src/ack-track.ts";
import { scratchDir } from "./helpers.ts";

const entry: Checkpoint = {
  path: "app.log",
  dev: "2049",
  ino: "123456789012345678",
  fingerprint: { bytes: 1024, hash: "ab".repeat(16) },
  offset: 4096,
};

describe("CheckpointStore", () => {
  it("round-trips checkpoints keyed by dev:ino and leaves no temp file behind", async () => {
    const { state } = scratchDir();
    const store = new CheckpointStore(path.join(state, "checkpoints.json"));
    expect(await store.load()).toEqual(new Map());
    expect(await store.save([entry])).toBe(true);
    expect(await store.load()).toEqual(new Map([["2049:123456789012345678", entry]]));
    expect(readdirSync(state)).toEqual(["checkpoints.json"]);
  });

  it.each([
    ["torn mid-write", (good: string) => good.slice(0, good.length / 2)],
    ["empty", () => ""],
    ["garbage bytes", () => "\u0000\u0000\u0000"],
    ["valid JSON of the wrong shape", () => JSON.stringify({ version: 1, files: "nope" })],
  ])("recovers from a %s file with a warning and no checkpoints", async (_name, damage) => {
    const { state } = scratchDir();
    const file = path.join(state, "checkpoints.json");
    const warnings: VolumeWatchWarning[] = [];
    const store = new CheckpointStore(file, (w) => warnings.push(w));
    await store.save([entry]);
    writeFileSync(file, damage(readFileSync(file, "utf8")));

    expect(await store.load()).toEqual(new Map());
    expect(warnings).toEqual([expect.objectContaining({ code: "checkpoint-corrupt", path: file })]);
    // Set aside for a post-mortem; the next save starts a clean file.
    expect(existsSync(`${file}.corrupt`)).toBe(true);
    expect(await store.save([entry])).toBe(true);
    expect((await store.load()).size).toBe(1);
  });

  it("skips malformed entries but keeps the good ones", async () => {
    const { state } = scratchDir();
    const file = path.join(state, "checkpoints.json");
    writeFileSync(file, JSON.stringify({ version: 1, files: [entry, { path: "x", offset: -1 }] }));
    const warnings: VolumeWatchWarning[] = [];
    const loaded = await new CheckpointStore(file, (w) => warnings.push(w)).load();
    expect([...loaded.values()]).toEqual([entry]);
    expect(warnings.map((w) => w.code)).toEqual(["checkpoint-corrupt"]);
  });

  it("reports a failed write once, keeps the previous file, and creates a missing directory", async () => {
    const { state } = scratchDir();
    const warnings: VolumeWatchWarning[] = [];
    const nested = new CheckpointStore(path.join(state, "new", "dir", "c.json"));
    expect(await nested.save([entry])).toBe(true);

    // A directory where the file should be: every rename fails.
    const blocked = path.join(state, "blocked.json");
    mkdirSync(path.join(blocked, "inside"), { recursive: true });
    const store = new CheckpointStore(blocked, (w) => warnings.push(w));
    expect(await store.save([entry])).toBe(false);
    expect(await store.save([entry])).toBe(false);
    expect(warnings.map((w) => w.code)).toEqual(["checkpoint-write-failed"]);
    expect(readdirSync(state).sort()).toEqual(["blocked.json", "new"]); // no temp file left
  });
});

describe("AckTrack", () => {
  it("commits only the highest contiguously acknowledged offset", () => {
    const track = new AckTrack(0);
    const a = track.add(0, 100);
    const b = track.add(100, 250);
    const c = track.add(250, 300);

    expect(track.ack(c, 300)).toBe(50);
    expect(track.ack(b, 200)).toBe(100); // a prefix of b
    expect(track.committed).toBe(0); // a is still out
    expect(track.ack(a, 100)).toBe(100);
    expect(track.committed).toBe(200); // a, then b up to 200; c waits for the rest of b
    expect(track.ack(b, 250)).toBe(50);
    expect(track.committed).toBe(300);
    expect(track.outstanding).toBe(0);
    expect(track.ack(a, 100)).toBe(0); // acking twice changes nothing
  });
});
