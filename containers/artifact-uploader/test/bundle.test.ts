import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, findBundles } from "../../../scripts/build.ts";
import { type FakeBuildkite, startFakeBuildkite } from "../../../test/fakes/buildkite-agent-api.ts";
import { tempBase, workspace } from "./helpers.ts";

/** The bundles as the images run them; built here when `pnpm test` has not built them yet. */
async function bundle(name: string): Promise<string> {
  const spec = findBundles().find((b) => b.name === name);
  if (!spec) throw new Error(`no bundle spec for ${name}`);
  if (!existsSync(spec.outfile)) {
    const built = await buildBundle(spec, { version: "test" });
    if (!built.ok) throw new Error(`could not build ${name}`);
  }
  return spec.outfile;
}

function run(file: string, args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; out: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code: code ?? 1, out }));
  });
}

describe("the bundles end to end", () => {
  let bk: FakeBuildkite;
  let base: string;
  beforeAll(async () => {
    bk = await startFakeBuildkite();
    base = await tempBase();
  });
  afterAll(() => bk.close());

  it("uploads a tree with the uploader and brings it back with the downloader", async () => {
    const [uploader, downloader] = await Promise.all([
      bundle("artifact-uploader"),
      bundle("artifact-downloader"),
    ]);
    const ws = await workspace(base);
    await mkdir(path.join(ws.root, "reports"));
    await writeFile(path.join(ws.root, "reports", "junit.xml"), "<testsuites/>");
    await writeFile(path.join(ws.root, "app.log"), "started\n");
    await writeFile(path.join(ws.lifecycle, "workload-finished"), "0");
    const env = {
      BUILDKITE_AGENT_ENDPOINT: bk.endpoint,
      BUILDKITE_AGENT_ACCESS_TOKEN: bk.token,
      BUILDKITE_JOB_ID: bk.jobId,
      BUILDKITE_BUILD_ID: bk.buildId,
      BUILDPOD_LIFECYCLE_DIR: ws.lifecycle,
    };

    const up = await run(uploader, ["--root", ws.root], env);
    expect(up.code).toBe(0);
    expect(up.out).not.toContain(bk.token);
    const status = JSON.parse(
      await readFile(path.join(ws.lifecycle, "status", "artifact-uploader.json"), "utf8"),
    );
    expect(status.summary.uploaded).toBe(2);
    expect(bk.finished().get("reports/junit.xml")?.content_type).toBe("application/xml");

    const dest = path.join(ws.dir, "imported");
    const down = await run(downloader, ["--query", "reports/*", "--dest", dest], env);
    expect(down.code).toBe(0);
    expect(await readFile(path.join(dest, "reports", "junit.xml"), "utf8")).toBe("<testsuites/>");
    expect(existsSync(path.join(dest, "app.log"))).toBe(false);
  }, 120_000);
});
