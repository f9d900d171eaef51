import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheLayout, markFile, mirrorLink } from "../src/cache.ts";
import { CheckoutError } from "../src/materialize.ts";
import { refFromBuildkiteEnv } from "../src/refs.ts";
import { parseRepoUrl } from "../src/url.ts";
import { checkout, sync } from "./fixture.ts";
import { Daemon, Origin, removeDir, sh, tempDir } from "./helpers.ts";

const root = tempDir("checkout");
const daemon = new Daemon(root);
const cache = join(root, "cache");
let app: Origin;
let first: string;
let url: string;
let n = 0;
const dest = () => join(root, "ws", `w${++n}`, "checkout");

beforeAll(async () => {
  await daemon.start();
  app = new Origin(root, "app");
  await app.commit({ "README.md": "hello\n", "src/a.txt": "a\n" });
  first = await app.commits(30);
  url = daemon.url("app");
  const [r] = await sync(cache, [url]);
  expect(r?.action).toBe("created");
}, 60_000);

afterAll(async () => {
  await daemon.stop();
  removeDir(root);
});

describe("cache hit", () => {
  it("dissociate: a standalone workspace and no network for a commit the mirror has", async () => {
    const d = dest();
    const { result } = await checkout(url, d, { cache, target: { commit: first, ref: "main" } });
    expect(result).toMatchObject({
      source: "hit",
      originContacted: false,
      commit: first,
      originBytes: 0,
    });
    expect(sh(d, "rev-parse", "HEAD")).toBe(first);
    expect(existsSync(join(d, ".git", "objects", "info", "alternates"))).toBe(false);
    expect(sh(d, "remote", "get-url", "origin")).toBe(url);
    expect(readFileSync(join(d, "README.md"), "utf8")).toBe("hello\n");
    const record = JSON.parse(readFileSync(`${d}.checkout.json`, "utf8"));
    expect(record).toMatchObject({
      url,
      commit: first,
      ref: "main",
      mode: "dissociate",
      source: "hit",
    });
    sh(d, "fsck", "--connectivity-only", "--no-dangling");
  });

  it("finds one mirror for every spelling of the URL", async () => {
    for (const spelling of [url.replace(/\.git$/, ""), `${url}/`, url.replace(/\.git$/, "/")]) {
      const { result } = await checkout(spelling, dest(), { cache, target: { commit: first } });
      expect(result.source).toBe("hit");
    }
  });

  it("reference: alternates name the stable mirror link, not a store generation", async () => {
    const d = dest();
    const { result } = await checkout(url, d, {
      cache,
      mode: "reference",
      target: { commit: first },
    });
    expect(result).toMatchObject({ source: "hit", mode: "reference", commit: first });
    const alternates = readFileSync(join(d, ".git", "objects", "info", "alternates"), "utf8");
    expect(alternates).toMatch(/\/v1\/mirrors\/127\.0\.0\.1-\d+-app-[0-9a-f]{20}\.git\/objects\n$/);
    expect(sh(d, "rev-parse", "HEAD")).toBe(first);
  });

  it("needs no origin at all when the mirror has the commit (origin down)", async () => {
    const offline = new Daemon(root);
    await offline.start();
    const offUrl = offline.url("app");
    await sync(cache, [offUrl]);
    await offline.stop();
    const { result } = await checkout(offUrl, dest(), {
      cache,
      target: { commit: first, ref: "main" },
    });
    expect(result).toMatchObject({ source: "hit", originContacted: false, commit: first });
  });

  it("fetches only the difference when origin is ahead of the mirror", async () => {
    const newer = await app.commits(3, "ahead");
    const d = dest();
    const { result } = await checkout(url, d, { cache, target: { commit: newer, ref: "main" } });
    expect(result).toMatchObject({ source: "hit", originContacted: true, commit: newer });
    // 3 commits, 3 trees and 3 blobs; the 30-commit history already came from the mirror.
    expect(result.originObjects).toBeGreaterThanOrEqual(9);
    expect(result.originObjects).toBeLessThanOrEqual(12);
    expect(result.originBytes).toBeGreaterThan(0);
    expect((await readdir(d)).filter((f) => f.startsWith("ahead"))).toHaveLength(3);
  });

  it("fetches a commit the copy holds without its trees and blobs, leaving no broken workspace", async () => {
    const newer = await app.commit({ "half/one.txt": "one\n", "half/two.txt": "two\n" });
    await app.push();
    // Sync's fetch writes a commit's objects one by one before it moves the ref, so a copy of
    // the mirror taken meanwhile can hold the commit without its tree: put only that in.
    const mirror = mirrorLink(cacheLayout(cache), parseRepoUrl(url).key);
    const object = execFileSync("git", ["cat-file", "commit", newer], { cwd: app.bare });
    const written = execFileSync("git", ["hash-object", "-t", "commit", "-w", "--stdin"], {
      cwd: mirror,
      input: object,
      encoding: "utf8",
    });
    expect(written.trim()).toBe(newer);

    const d = dest();
    const { result } = await checkout(url, d, { cache, target: { commit: newer, ref: "main" } });
    expect(result).toMatchObject({ source: "hit", originContacted: true, commit: newer });
    expect(readFileSync(join(d, "half", "two.txt"), "utf8")).toBe("two\n");
    expect(sh(d, "status", "--porcelain")).toBe("");
    sh(d, "fsck", "--connectivity-only", "--no-dangling");
  });

  it("follows a force-pushed branch to a commit the mirror never saw", async () => {
    sh(app.work, "checkout", "--quiet", "-b", "rewrite", first);
    const rewritten = await app.commit({ "rewritten.txt": "new history\n" });
    await app.push("feature", true);
    await sync(cache, [url]);
    sh(app.work, "reset", "--quiet", "--hard", first);
    const forced = await app.commit({ "forced.txt": "forced\n" });
    await app.push("feature", true);
    sh(app.work, "checkout", "--quiet", "main");

    const d = dest();
    const { result } = await checkout(url, d, {
      cache,
      target: { commit: "HEAD", ref: "feature" },
    });
    expect(result.commit).toBe(forced);
    expect(result.commit).not.toBe(rewritten);
    expect(existsSync(join(d, "forced.txt"))).toBe(true);
    expect(existsSync(join(d, "rewritten.txt"))).toBe(false);
  });

  it("checks out a pull request head from the Buildkite env's refspec", async () => {
    sh(app.work, "checkout", "--quiet", "-b", "pr", "main");
    const head = await app.commit({ "pr.txt": "from a fork\n" });
    sh(app.work, "push", "--quiet", "origin", "HEAD:refs/pull/7/head");
    sh(app.work, "checkout", "--quiet", "main");
    const ref = refFromBuildkiteEnv({ BUILDKITE_PULL_REQUEST: "7", BUILDKITE_BRANCH: "pr" });
    expect(ref).toBe("refs/pull/7/head");

    const d = dest();
    const { result } = await checkout(url, d, { cache, target: { commit: head, ref } });
    expect(result).toMatchObject({ source: "hit", commit: head, originContacted: true });
    expect(readFileSync(join(d, "pr.txt"), "utf8")).toBe("from a fork\n");
  });

  it("checks out the commit an annotated tag points at, for a tag build", async () => {
    const tagged = await app.commits(1, "tagged");
    sh(
      app.work,
      "-c",
      "user.name=t",
      "-c",
      "user.email=t@example.invalid",
      "tag",
      "-a",
      "-m",
      "release",
      "v1.0.0",
      tagged,
    );
    sh(app.work, "push", "--quiet", "origin", "refs/tags/v1.0.0");
    const ref = refFromBuildkiteEnv({ BUILDKITE_TAG: "v1.0.0", BUILDKITE_BRANCH: "v1.0.0" });
    const d = dest();
    const { result } = await checkout(url, d, { cache, target: { commit: "HEAD", ref } });
    expect(result.commit).toBe(tagged);
    expect(sh(d, "rev-parse", "HEAD")).toBe(tagged);
  });

  it("exits with a clear error for a commit in neither cache nor origin", async () => {
    const ghost = "0123456789abcdef0123456789abcdef01234567";
    const err = await checkout(url, dest(), {
      cache,
      target: { commit: ghost, ref: "main" },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect(err.code).toBe("unknown-commit");
    expect(err.message).toContain(ghost);
    expect(err.message).toContain(url);
  });
});

describe("cache miss and broken cache", () => {
  it("clones from origin when the cache has no mirror, and says so", async () => {
    const other = new Origin(root, "uncached");
    const c = await other.commits(2);
    const { result, events } = await checkout(daemon.url("uncached"), dest(), {
      cache,
      target: { commit: c },
    });
    expect(result).toMatchObject({
      source: "miss",
      commit: c,
      cacheReason: "no mirror for this repository",
    });
    expect(events.some((e) => e.type === "warning" && e.code === "cache-miss")).toBe(true);
  });

  it("clones from origin when the cache directory is missing", async () => {
    const { result } = await checkout(url, dest(), {
      cache: join(root, "no-such-cache"),
      target: { commit: first },
    });
    expect(result.source).toBe("miss");
    expect(result.cacheReason).toMatch(/cache not readable/);
  });

  it("falls back to origin on a corrupt mirror, marks it, and sync rebuilds it", async () => {
    const name = "fragile";
    const fragile = new Origin(root, name);
    await fragile.commit({ "big.txt": `${"payload line\n".repeat(2000)}` });
    const tip = await fragile.commits(5);
    const fUrl = daemon.url(name);
    await sync(cache, [fUrl]);

    // Overwrite the pack body (keeping its index), so reading any object fails.
    const layout = cacheLayout(cache);
    const key = (await import("../src/url.ts")).parseRepoUrl(fUrl).key;
    const { realpathSync, openSync, writeSync, closeSync, statSync } = await import("node:fs");
    const mirror = realpathSync(join(layout.mirrors, `${key}.git`));
    const packDir = join(mirror, "objects", "pack");
    const pack = (await readdir(packDir)).find((f) => f.endsWith(".pack")) as string;
    const fd = openSync(join(packDir, pack), "r+");
    const size = statSync(join(packDir, pack)).size;
    writeSync(fd, Buffer.alloc(size - 32, 0x5a), 0, size - 32, 12);
    closeSync(fd);

    const d = dest();
    const { result } = await checkout(fUrl, d, { cache, target: { commit: tip, ref: "main" } });
    expect(result).toMatchObject({ source: "fallback", commit: tip, brokenMarkWritten: true });
    expect(sh(d, "rev-parse", "HEAD")).toBe(tip);
    sh(d, "fsck", "--no-dangling");
    expect(existsSync(markFile(layout, key))).toBe(true);

    // A marked mirror is a miss (not a second fallback) until sync rebuilds it.
    expect((await checkout(fUrl, dest(), { cache, target: { commit: tip } })).result.source).toBe(
      "miss",
    );
    const [synced] = await sync(cache, [fUrl]);
    expect(synced?.action).toBe("rebuilt");
    expect(existsSync(markFile(layout, key))).toBe(false);
    expect((await checkout(fUrl, dest(), { cache, target: { commit: tip } })).result.source).toBe(
      "hit",
    );
  });
});

describe("origin unreachable", () => {
  it("uses the cache's tip with a warning for HEAD, and fails with strictOrigin", async () => {
    const down = new Daemon(root);
    await down.start();
    const downUrl = down.url("app");
    await sync(cache, [downUrl]);
    await down.stop();
    const tip = sh(app.bare, "rev-parse", "main");

    const { result, events } = await checkout(downUrl, dest(), {
      cache,
      target: { commit: "HEAD", ref: "main" },
    });
    expect(result.source).toBe("hit");
    expect(result.commit).toBe(tip);
    expect(events.some((e) => e.type === "warning" && e.code === "origin-unreachable")).toBe(true);

    const err = await checkout(downUrl, dest(), {
      cache,
      strictOrigin: true,
      target: { commit: "HEAD", ref: "main" },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect(err.code).toBe("origin-unreachable");
  });
});

describe("origin unreachable on a cache miss", () => {
  it("fails as origin unreachable, saying what to check", async () => {
    // Port 1 on loopback: nothing listens there, and no other test's server can take it.
    const downUrl = "git://127.0.0.1:1/app";
    const err = await checkout(downUrl, dest(), {
      cache: join(root, "no-cache-here"),
      target: { commit: "HEAD", ref: "main" },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect(err.code).toBe("origin-unreachable");
    expect(err.message).toMatch(/could not clone from .*: origin is unreachable/);
    expect(err.message).toContain("check the network");
  });
});

describe("destination", () => {
  it("refuses a non-empty destination holding something else, and wipes it when told", async () => {
    const other = dest();
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "precious.txt"), "x");
    const err = await checkout(url, other, { cache, target: { commit: first } }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect(err.message).toMatch(/not empty.*--wipe/);
    expect(existsSync(join(other, "precious.txt"))).toBe(true);
    const { result } = await checkout(url, other, { cache, target: { commit: first }, wipe: true });
    expect(result.source).toBe("hit");
    expect(existsSync(join(other, "precious.txt"))).toBe(false);
  });

  it("refuses a destination that is a file, saying so, rather than failing as a bug", async () => {
    const file = dest();
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, "not a directory");
    const err = await checkout(url, file, { cache, target: { commit: first } }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect(err.code).toBe("dest-not-empty");
    expect(err.message).toBe(
      `could not check out into ${file}: it (or a directory above it) is a file, not a ` +
        "directory; remove the file or point --dest elsewhere",
    );
  });

  it("updates a destination that already holds the repository in place", async () => {
    const d = dest();
    await checkout(url, d, { cache, target: { commit: first } });
    writeFileSync(join(d, "stray.txt"), "left by an earlier attempt");
    writeFileSync(join(d, "README.md"), "edited");
    const newer = await app.commits(1, "inplace");
    const { result } = await checkout(url, d, { cache, target: { commit: newer, ref: "main" } });
    expect(result).toMatchObject({ source: "in-place", commit: newer });
    expect(sh(d, "rev-parse", "HEAD")).toBe(newer);
    expect(existsSync(join(d, "stray.txt"))).toBe(false);
    expect(readFileSync(join(d, "README.md"), "utf8")).toBe("hello\n");
  });
});

describe("interrupted attempts", () => {
  it("resumes a workspace cloned from the mirror whose origin was never set", async () => {
    const d = dest();
    const layout = cacheLayout(cache);
    const key = parseRepoUrl(url).key;
    const { realpathSync } = await import("node:fs");
    mkdirSync(d, { recursive: true });
    sh(
      d,
      "clone",
      "--quiet",
      "--no-checkout",
      "--",
      realpathSync(join(layout.mirrors, `${key}.git`)),
      ".",
    );
    const { result } = await checkout(url, d, { cache, target: { commit: first, ref: "main" } });
    expect(result).toMatchObject({ source: "in-place", commit: first });
    expect(sh(d, "remote", "get-url", "origin")).toBe(url);
  });

  it("starts over when the workspace it would update in place is broken", async () => {
    const d = dest();
    await checkout(url, d, { cache, target: { commit: first } });
    removeDir(join(d, ".git", "objects"));
    mkdirSync(join(d, ".git", "objects", "pack"), { recursive: true });
    const newer = await app.commits(1, "restart");
    const { result, events } = await checkout(url, d, {
      cache,
      target: { commit: newer, ref: "main" },
    });
    expect(result.commit).toBe(newer);
    expect(events.some((e) => e.type === "warning" && e.code === "in-place-failed")).toBe(true);
    sh(d, "fsck", "--connectivity-only", "--no-dangling");
  });
});

describe("submodules", () => {
  it("checks out submodules, using the submodule's mirror when the cache has one", async () => {
    const lib = new Origin(root, "lib");
    await lib.commit({ "lib.txt": "library\n" });
    await lib.push();
    const parent = new Origin(root, "parent");
    await parent.commit({ "main.txt": "parent\n" });
    sh(
      parent.work,
      "-c",
      "protocol.file.allow=always",
      "submodule",
      "add",
      "--quiet",
      daemon.url("lib"),
      "vendor/lib",
    );
    const tip = await parent.commit({}, "add submodule");
    await parent.push();
    await sync(cache, [daemon.url("parent"), daemon.url("lib")]);

    const d = dest();
    const { result } = await checkout(daemon.url("parent"), d, {
      cache,
      submodules: true,
      target: { commit: tip },
    });
    expect(result.submodules).toBe(1);
    expect(readFileSync(join(d, "vendor", "lib", "lib.txt"), "utf8")).toBe("library\n");
    // dissociate: the submodule stands alone too.
    const subGit = sh(join(d, "vendor", "lib"), "rev-parse", "--git-dir");
    expect(existsSync(join(subGit, "objects", "info", "alternates"))).toBe(false);
  });
});
