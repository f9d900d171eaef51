/**
 * The test command (`pnpm test`): installs the system packages the tests run against, builds
 * the bundles the end-to-end tests start, runs vitest, and ends with one line that CI reads:
 * `N passed, N failed` (and `, N skipped` when any were). Extra arguments go to vitest.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const REPORT = path.join(ROOT, ".test-report.json");

interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites: number;
}

function run(command: string, args: string[]): number {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: "inherit" });
  return result.status ?? 1;
}

const node = process.execPath;
if (run(node, ["scripts/system-packages.ts"]) !== 0) process.exit(1);
if (run(node, ["scripts/build.ts"]) !== 0) {
  console.error("could not build the bundles; the tests need them");
  console.log("0 passed, 1 failed");
  process.exit(1);
}

rmSync(REPORT, { force: true });
const vitest = path.join(ROOT, "node_modules", "vitest", "vitest.mjs");
const code = run(node, [
  vitest,
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${REPORT}`,
  ...process.argv.slice(2),
]);

if (!existsSync(REPORT)) {
  console.error("vitest wrote no report");
  console.log("0 passed, 1 failed");
  process.exit(code || 1);
}
const report = JSON.parse(readFileSync(REPORT, "utf8")) as VitestReport;
// A suite that fails to load has no failed tests but must still count as a failure.
const failed =
  report.numFailedTests + (report.numFailedTests === 0 ? report.numFailedTestSuites : 0);
const skipped = report.numPendingTests + report.numTodoTests;
console.log(
  `${report.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`,
);
process.exit(code);
