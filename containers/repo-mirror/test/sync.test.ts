import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheLayout, lockFile, markFile, mirrorLink } from "../src/cache.ts";
import { acquireLock, LockTimeoutError } from "../src/lock.ts";
import { parseRepoUrl } from "../src/url.ts";
import { checkout, sync } from "./fixture.ts";
import { Daemon, Origin, removeDir, sh, tempDir } from "./helpers.ts";

const root = tempDir("sync");
const daemon = new Daemon(root);
let app: Origin;
let url: string;
let key: string;

beforeAll(async () => {
  await daemon.start();
  app = new Origin(root, "app");
  await app.commit({ "a.txt": "a\n" });
  await app.commits(5);
  url = daemon.url("app");
  key = parseRepoUrl(url).key;
}, 30_000);

afterAll(async () => {
  await daemon.stop();
  removeDir(root);
});

describe("sync", () => {
  it("creates a mirror in tmp/ and links it into place, leaving no half mirror", async () => {
    const cache = join(root, "c1");
    const [r] = await sync(cache, [url]);
    expect(r).toMatchObject({ action: "created", url, key });
    const l = cacheLayout(cache);
    expect(readlinkSync(mirrorLink(l, key))).toMatch(
      new RegExp(`^\\.\\./store/${key}\\.\\d+-\\d+\\.git$`),
    );
    expect(readdirSync(l.tmp)).toEqual([]);
    expect(sh(mirrorLink(l, key), "config", "--get", "gc.auto")).toBe("0");
    expect(sh(mirrorLink(l, key), "rev-parse", "refs/heads/main")).toBe(
      sh(app.bare, "rev-parse", "main"),
    );
  });

  it("fetches with --prune, runs gc when due, and reports per repository", async () => {
    const cache = join(root, "c2");
    await sync(cache, [url]);
    sh(app.work, "push", "--quiet", "origin", "HEAD:refs/heads/doomed");
    await sync(cache, [url], { gc: "never" });
    const mirror = mirrorLink(cacheLayout(cache), key);
    expect(sh(mirror, "for-each-ref", "refs/heads/doomed")).not.toBe("");

    sh(app.work, "push", "--quiet", "origin", ":refs/heads/doomed");
    const tip = await app.commits(2, "more");
    const [r] = await sync(cache, [url], { gc: "always" });
    expect(r).toMatchObject({ action: "updated", gc: true });
    expect(sh(mirror, "for-each-ref", "refs/heads/doomed")).toBe("");
    expect(sh(mirror, "rev-parse", "main")).toBe(tip);
    const packs = readdirSync(join(mirror, "objects", "pack")).filter((f) => f.endsWith(".pack"));
    expect(packs).toHaveLength(1);
  });

  it("reports a failed repository and still syncs the others", async () => {
    const cache = join(root, "c3");
    const results = await sync(cache, [daemon.url("no-such-repo"), url]);
    const byUrl = Object.fromEntries(results.map((r) => [r.url, r]));
    expect(byUrl[url]?.action).toBe("created");
    expect(byUrl[daemon.url("no-such-repo")]).toMatchObject({ action: "failed" });
    expect(byUrl[daemon.url("no-such-repo")]?.error).toMatch(/git clone exited/);
  });

  it("rebuilds a marked mirror, retires the old generation and deletes it after the grace", async () => {
    const cache = join(root, "c4");
    const l = cacheLayout(cache);
    await sync(cache, [url]);
    const oldTarget = readlinkSync(mirrorLink(l, key));
    mkdirSync(l.marks, { recursive: true });
    writeFileSync(markFile(l, key), JSON.stringify({ url, reason: "test", at: "" }));
    const [r] = await sync(cache, [url]);
    expect(r?.action).toBe("rebuilt");
    expect(existsSync(markFile(l, key))).toBe(false);
    const newTarget = readlinkSync(mirrorLink(l, key));
    expect(newTarget).not.toBe(oldTarget);
    expect(existsSync(join(l.mirrors, oldTarget, "buildpod-retired"))).toBe(true);
    await sync(cache, [url], { retiredGraceMs: 0 });
    expect(existsSync(join(l.mirrors, oldTarget))).toBe(false);
    expect(existsSync(join(l.mirrors, newTarget))).toBe(true);
  });
});

describe("locks", () => {
  it("times out on a live owner's lock, naming the lock and its owner", async () => {
    const cache = join(root, "c5");
    const l = cacheLayout(cache);
    mkdirSync(l.locks, { recursive: true });
    const held = await acquireLock(lockFile(l, key), { timeoutMs: 1000, staleMs: 60_000 });
    try {
      const [r] = await sync(cache, [url], { lockTimeoutMs: 300 });
      expect(r?.action).toBe("failed");
      expect(r?.error).toMatch(/could not lock .*held by pid \d+/);
      await expect(
        acquireLock(lockFile(l, key), { timeoutMs: 100, staleMs: 60_000 }),
      ).rejects.toThrow(LockTimeoutError);
    } finally {
      await held.release();
    }
    expect(existsSync(lockFile(l, key))).toBe(false);
  });

  it("takes over a lock whose heartbeat stopped, and one whose process is gone", async () => {
    const dir = join(root, "locks");
    mkdirSync(dir, { recursive: true });
    const frozen = join(dir, "frozen.lock");
    writeFileSync(
      frozen,
      JSON.stringify({ pid: process.pid, host: "elsewhere", token: "t1", at: "" }),
    );
    const old = new Date(Date.now() - 3600_000);
    utimesSync(frozen, old, old);
    const a = await acquireLock(frozen, { timeoutMs: 5000, staleMs: 60_000, pollMs: 20 });
    expect(readFileSync(frozen, "utf8")).toContain(String(process.pid));
    await a.release();

    const orphan = join(dir, "orphan.lock");
    const { hostname } = await import("node:os");
    writeFileSync(
      orphan,
      JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), token: "t2", at: "" }),
    );
    const b = await acquireLock(orphan, { timeoutMs: 5000, staleMs: 60_000, pollMs: 20 });
    await b.release();
    expect(existsSync(orphan)).toBe(false);
  });
});

describe("checkouts while sync fetches and gcs the same mirror", () => {
  it("20 concurrent checkouts are each correct and standalone", async () => {
    const cache = join(root, "busy");
    const busy = new Origin(root, "busy");
    for (let i = 0; i < 8; i++)
      await busy.commit({ [`dir${i}/file.txt`]: `${"x".repeat(4000)}${i}\n` });
    const commits = [await busy.commits(20, "h")];
    const busyUrl = daemon.url("busy");
    await sync(cache, [busyUrl]);
    // Fetched objects stay loose in the mirror until gc packs them and deletes the loose files:
    // hundreds of files that vanish under the copying checkouts, the race worth testing.
    const mirror = mirrorLink(cacheLayout(cache), parseRepoUrl(busyUrl).key);
    sh(mirror, "config", "fetch.unpackLimit", "100000");
    const many = (tag: string, n: number) =>
      Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`${tag}/f${i}.txt`, `${tag} ${i}\n`]),
      );
    await busy.commit(many("loose", 300));
    await busy.push();
    await sync(cache, [busyUrl], { gc: "never" });

    // The writer: more loose objects, then fetch + full gc, as fast as it can.
    let done = false;
    let rounds = 0;
    const writer = (async () => {
      while (!done || rounds < 2) {
        commits.push(await busy.commit(many(`round${rounds}`, 100)));
        await busy.push();
        const [r] = await sync(cache, [busyUrl], { gc: rounds % 2 ? "never" : "always" });
        expect(r?.action).toBe("updated");
        rounds++;
      }
    })();

    // Staggered starts; each asks for the newest commit pushed so far, in the mirror or not yet.
    const runs = Array.from({ length: 20 }, async (_, i) => {
      await sleep(i * 40);
      const commit = commits.at(-1) as string;
      const dest = join(root, "busy-ws", `w${i}`);
      const { result, events } = await checkout(busyUrl, dest, {
        cache,
        target: { commit, ref: "main" },
      });
      return {
        dest,
        commit,
        result,
        retries: events.filter((e) => e.type === "warning" && e.code === "copy-retry").length,
      };
    });
    const settled = await Promise.allSettled(runs);
    done = true;
    await writer;

    for (const s of settled) {
      expect(s.status).toBe("fulfilled");
      if (s.status !== "fulfilled") continue;
      const { dest, commit, result } = s.value;
      expect(result.commit).toBe(commit);
      // A copy that lost the race with gc every time it was retried falls back to origin, which
      // the issue asks for ("never fail the job for a broken cache"); what must hold for every
      // checkout is that it is correct and standalone.
      expect(["hit", "in-place", "fallback"]).toContain(result.source);
      expect(sh(dest, "rev-parse", "HEAD")).toBe(commit);
      expect(sh(dest, "status", "--porcelain")).toBe("");
      expect(existsSync(join(dest, ".git", "objects", "info", "alternates"))).toBe(false);
      sh(dest, "fsck", "--connectivity-only", "--no-dangling");
    }
    expect(rounds).toBeGreaterThanOrEqual(2);
    // How often the race was actually hit varies from run to run; say so, assert nothing on it.
    const retried = settled.reduce(
      (n, s) => n + (s.status === "fulfilled" ? s.value.retries : 0),
      0,
    );
    const fellBack = settled.filter(
      (s) => s.status === "fulfilled" && s.value.result.source === "fallback",
    ).length;
    console.info(
      `concurrent checkouts: ${retried} mirror copies redone after a concurrent gc, ${fellBack} fell back to origin`,
    );
  }, 240_000);
});
