// The artifacts volume mounted read-only, as a pod may mount it into the sidecar: the bundle,
// in a private mount namespace (`unshare --mount`) where the root is a read-only bind mount,
// uploads every file to a `dir:` store outside it. Any write under the root would fail there
// with EROFS, so a clean run shows that the uploader only ever reads its files.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inMountNamespace } from "../../../test/mount-namespace.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const BUNDLE = path.join(ROOT, "containers/artifact-uploader/dist/artifact-uploader.mjs");
let dir: string;

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(ROOT, "scripts/build.ts"), "artifact-uploader"], {
    cwd: ROOT,
    stdio: "ignore",
  });
  dir = await mkdtemp(path.join(tmpdir(), "uploader-ro-"));
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("artifact-uploader on a read-only artifacts volume", () => {
  it("uploads every file and writes nothing under the root", async () => {
    const source = path.join(dir, "artifacts");
    const mounted = path.join(dir, "mounted");
    const store = path.join(dir, "store");
    const lifecycle = path.join(dir, "lifecycle");
    for (const d of [path.join(source, "reports"), mounted, lifecycle])
      await mkdir(d, { recursive: true });
    await writeFile(path.join(source, "reports", "junit.xml"), "<testsuites/>\n");
    await writeFile(path.join(source, "build.log"), "done\n");
    // The workload has finished: one drain pass over the tree, then exit.
    await writeFile(path.join(lifecycle, "workload-finished"), "0\n");

    // The probe proves the bind mount is read-only before the uploader runs on it.
    const stdout = await inMountNamespace(
      'mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && ! touch "$2/probe" 2>/dev/null',
      [source, mounted],
      [
        process.execPath,
        BUNDLE,
        "--root",
        mounted,
        "--store",
        `dir:${store}`,
        "--lifecycle-dir",
        lifecycle,
      ],
    );

    const summary = stdout
      .split("\n")
      .filter((l) => l.includes('"msg":"summary"'))
      .map((l) => JSON.parse(l) as { exit_code: number; summary: { uploaded: number } })[0];
    expect(summary).toMatchObject({ exit_code: 0, summary: { uploaded: 2 } });
    expect(await readFile(path.join(store, "reports", "junit.xml"), "utf8")).toBe(
      "<testsuites/>\n",
    );
    expect(await readFile(path.join(store, "build.log"), "utf8")).toBe("done\n");
  }, 60_000);
});
