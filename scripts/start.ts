/**
 * The Quick start's first command (`pnpm start`): builds every container bundle, then runs the
 * main job: the self-test BuildEnvironment (examples/quickstart) as a pod on this machine, its
 * repo cache first brought up to date by `repo-mirror sync` as the cluster's CronJob would.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const run = (args: string[]) =>
  spawnSync(process.execPath, args, { cwd: ROOT, stdio: "inherit" }).status ?? 1;

const built = run(["scripts/build.ts"]);
if (built !== 0) process.exit(built);
process.exit(
  run([
    "cli/src/main.ts",
    "run",
    "--file",
    "examples/quickstart/build-environment.yaml",
    "--sync-cache",
    ...process.argv.slice(2),
  ]),
);
