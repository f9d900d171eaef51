import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inMountNamespace } from "../../../test/mount-namespace.ts";
import { installBinary, readImageVersion, recordVersion } from "../src/install-binary.ts";

const run = promisify(execFile);
const fixture = join(import.meta.dirname, "fixtures", "install-into.ts");

let dir: string;
let image: string;
let agent: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agent-injector-bin-"));
  // A stand-in for the image's agent: any executable; 200 KiB so a 64 KiB volume cannot hold it.
  image = join(dir, "image");
  await mkdir(image);
  agent = join(image, "buildkite-agent");
  await writeFile(
    agent,
    Buffer.concat([Buffer.from("#!/bin/sh\necho stand-in\nexit 0\n"), randomBytes(200 * 1024)]),
  );
  await chmod(agent, 0o700);
  await writeFile(join(image, "VERSION"), "3.137.0\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("installBinary", () => {
  it("copies the binary executable for everyone, then skips an identical copy", async () => {
    const dest = join(dir, "bin-idem");
    const first = await installBinary(
      { source: agent, name: "buildkite-agent" },
      { dest, mode: 0o755 },
    );
    expect(first.copied).toBe(true);
    expect(await readFile(first.path)).toEqual(await readFile(agent));
    const before = await stat(first.path);
    expect(before.mode & 0o777).toBe(0o755);

    const again = await installBinary(
      { source: agent, name: "buildkite-agent" },
      { dest, mode: 0o755 },
    );
    expect(again.copied).toBe(false);
    expect(again.sha256).toBe(first.sha256);
    const after = await stat(first.path);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(await readdir(dest)).toEqual(["buildkite-agent"]);

    const { stdout } = await run(first.path);
    expect(stdout).toBe("stand-in\n");
  });

  it("replaces a different binary and leaves no temp file behind", async () => {
    const dest = join(dir, "bin-replace");
    await mkdir(dest);
    await writeFile(join(dest, "buildkite-agent"), "old version");
    const result = await installBinary(
      { source: agent, name: "buildkite-agent" },
      { dest, mode: 0o755 },
    );
    expect(result.copied).toBe(true);
    expect(await readFile(join(dest, "buildkite-agent"))).toEqual(await readFile(agent));
    expect(await readdir(dest)).toEqual(["buildkite-agent"]);
  });

  it("fixes the mode of an identical copy that is not executable", async () => {
    const dest = join(dir, "bin-mode");
    await mkdir(dest);
    await writeFile(join(dest, "buildkite-agent"), await readFile(agent), { mode: 0o600 });
    const result = await installBinary(
      { source: agent, name: "buildkite-agent" },
      { dest, mode: 0o755 },
    );
    expect(result.copied).toBe(true);
    expect((await stat(result.path)).mode & 0o777).toBe(0o755);
  });

  it("names a binary missing from the image", async () => {
    const missing = join(image, "no-such-agent");
    const attempt = installBinary(
      { source: missing, name: "x" },
      { dest: join(dir, "bin-missing"), mode: 0o755 },
    );
    await expect(attempt).rejects.toMatchObject({
      reason: "binary-missing",
      message: expect.stringContaining(missing),
    });
  });

  it("reads the version the image records beside the binary and records it in dest", async () => {
    const dest = join(dir, "bin-version");
    await mkdir(dest);
    expect(await readImageVersion(agent)).toBe("3.137.0");
    expect(await readImageVersion(join(dir, "nowhere", "agent"))).toBeUndefined();
    const path = await recordVersion("buildkite-agent", "3.137.0", { dest, mode: 0o755 });
    expect(await readFile(path, "utf8")).toBe("3.137.0\n");
  });
});

/** Installs the agent onto a tmpfs mounted with `mountOptions`, in a private mount namespace. */
async function installInNamespace(mountOptions: string, destSub: string) {
  const mountPoint = await mkdtemp(join(dir, "mnt-"));
  const stdout = await inMountNamespace(
    'mount -t tmpfs -o "$1" tmpfs "$2"',
    [mountOptions, mountPoint],
    [process.execPath, fixture, agent, join(mountPoint, destSub)],
  );
  return JSON.parse(stdout) as { ok: boolean; reason?: string; message?: string };
}

describe("installBinary on a volume that refuses", () => {
  it("reports a full volume (ENOSPC) and what to do", async () => {
    const outcome = await installInNamespace("size=64k", "bin");
    expect(outcome).toMatchObject({ ok: false, reason: "dest-full" });
    expect(outcome.message).toMatch(/no space left .*sizeLimit/);
  });

  it("reports a read-only volume (EROFS) and what to do", async () => {
    const outcome = await installInNamespace("ro,size=1m", ".");
    expect(outcome).toMatchObject({ ok: false, reason: "dest-read-only" });
    expect(outcome.message).toMatch(/read-only.*readOnly: false/);
  });

  it("works on the same kind of volume when it has room (the control case)", async () => {
    const outcome = await installInNamespace("size=1m", "bin");
    expect(outcome).toEqual({ ok: true, copied: true });
  });
});
