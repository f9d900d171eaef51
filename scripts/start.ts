/**
 * The Quick start's first command. Until the main job (a BuildEnvironment run as a local pod)
 * lands, it builds every container bundle and shows each one's `--help`, run from the bundle
 * exactly as the images run it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

const build = spawnSync(process.execPath, ["scripts/build.ts"], { cwd: ROOT, stdio: "inherit" });
if (build.status !== 0) process.exit(build.status ?? 1);

for (const name of readdirSync(path.join(ROOT, "containers")).sort()) {
  const bundle = path.join(ROOT, "containers", name, "dist", `${name}.mjs`);
  if (!existsSync(bundle)) continue;
  console.log(`\n===== ${name} --help =====`);
  spawnSync(process.execPath, [bundle, "--help"], { stdio: "inherit" });
}
