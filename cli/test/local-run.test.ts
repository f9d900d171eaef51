/**
 * End-to-end tests of `buildpod run`: the command runs, as a child process the way users start
 * it, a small BuildEnvironment (fixtures/local-run/) on a git repository the test generates,
 * with every sidecar of ours and a shell workload that writes logs, artifacts and metrics.
 * What is asserted is what the run prints: the summary's checks, each container's exit code
 * and counts in its table, and the progress lines that tell how the sidecars were stopped.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildPod, loadDescription } from "@buildpod/cli";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";

const ROOT = path.resolve(import.meta.dirname, "../..");
const FIXTURE = path.join(import.meta.dirname, "fixtures", "local-run");
const MAIN = path.join(ROOT, "cli", "src", "main.ts");
const PROGRAMS = [
  "agent-injector",
  "repo-mirror",
  "artifact-downloader",
  "log-exporter",
  "artifact-uploader",
  "metrics-exporter",
];
const SIDECARS = ["log-exporter", "artifact-uploader", "metrics-exporter"];
const CHECKS = [
  "every log line reached the sink exactly once",
  "every artifact arrived with its sha256",
  "served metrics scraped once by the run",
];
// What fixtures/local-run/workload.sh prints to stdout besides its OUTPUT_LINES lines: the
// commit line and the previous build's report line; then a closing line, unless it is killed.
const HEADER_LINES = 2;
const KILLED = "still running at the end of the grace period, SIGKILL";
const RUN_TIMEOUT = 180_000;

// Made by the first case that runs, so that a run whose filter selects none leaves nothing.
let temp = "";
afterAll(() => {
  if (temp) rmSync(temp, { recursive: true, force: true });
});

// The project's test command builds the bundles first; a lone `vitest run` of this file may
// find them missing or older than the sources, and builds them itself.
beforeAll(() => {
  if (bundlesAreFresh()) return;
  const build = spawnSync(process.execPath, [path.join(ROOT, "scripts", "build.ts")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  expect(build.status, `pnpm run build failed:\n${build.stdout}${build.stderr}`).toBe(0);
}, 180_000);

/** Every bundle the runs start exists and is newer than every source it is built from. */
function bundlesAreFresh(): boolean {
  return PROGRAMS.every((p) => {
    const bundle = path.join(ROOT, "containers", p, "dist", `${p}.mjs`);
    if (!existsSync(bundle)) return false;
    const dirs = [path.join(ROOT, "containers", p, "src"), path.join(ROOT, "shared")];
    const newer = spawnSync(
      "find",
      [
        ...dirs,
        "-name",
        "node_modules",
        "-prune",
        "-o",
        "-newer",
        bundle,
        "-name",
        "*.ts",
        "-print",
      ],
      { encoding: "utf8" },
    );
    return newer.status === 0 && newer.stdout.trim() === "";
  });
}

// ---------------------------------------------------------------------------------------------
// The generated repository and description

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "Local Run",
  GIT_AUTHOR_EMAIL: "local-run@example.com",
  GIT_COMMITTER_NAME: "Local Run",
  GIT_COMMITTER_EMAIL: "local-run@example.com",
};

function git(cwd: string, ...args: string[]): string {
  const result = spawnSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout.trim();
}

/** A repository with a short history; the workload script arrives in the second commit. */
function makeOrigin(dir: string): void {
  git(temp, "init", "--quiet", "--initial-branch=main", dir);
  writeFileSync(path.join(dir, "README.md"), "# a repository made by local-run.test.ts\n");
  git(dir, "add", "README.md");
  git(dir, "commit", "--quiet", "-m", "start the project");
  copyFileSync(path.join(FIXTURE, "workload.sh"), path.join(dir, "workload.sh"));
  git(dir, "add", "workload.sh");
  git(dir, "commit", "--quiet", "-m", "add the build script");
  writeFileSync(path.join(dir, "main.c"), "int main(void) { return 0; }\n");
  git(dir, "add", "main.c");
  git(dir, "commit", "--quiet", "-m", "add the program");
}

/** The fields of the fixture's `spec` a case may change. */
interface Spec {
  workload: { env: Record<string, string> };
  repository: { commit: string };
}

interface Case {
  /** Folder of this case: the description, `origin/` and the run's state dir. */
  dir: string;
  file: string;
  stateDir: string;
}

let cases = 0;

/** A fresh folder with a generated repository and the fixture description, edited. */
function newCase(edit: (spec: Spec) => void = () => {}): Case {
  temp ||= mkdtempSync(path.join(tmpdir(), "buildpod-local-run-"));
  const dir = path.join(temp, `case-${++cases}`);
  makeOrigin(path.join(dir, "origin"));
  const description = parse(readFileSync(path.join(FIXTURE, "build-environment.yaml"), "utf8"));
  edit(description.spec);
  const file = path.join(dir, "build-environment.yaml");
  writeFileSync(file, stringify(description));
  return { dir, file, stateDir: path.join(dir, "state") };
}

/** The workload's OUTPUT_LINES: how many lines it writes to stdout, and to its log file. */
function outputLines(c: Case): number {
  return Number(parse(readFileSync(c.file, "utf8")).spec.workload.env.OUTPUT_LINES);
}

/** The grace period the pod gets for this description and mode. */
function gracePeriodMs(file: string, mode: Mode): number {
  const description = loadDescription(file);
  description.spec.sidecarMode = mode;
  return buildPod(description, { kind: "kubernetes" }).terminationGracePeriodSeconds * 1000;
}

// ---------------------------------------------------------------------------------------------
// Running `buildpod run` and reading what it prints

type Mode = "native" | "classic";

interface Row {
  role: string;
  exit: string;
  counts: Record<string, number>;
}

interface RunOutput {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Container name → its row of the summary table, in table order. */
  rows: Map<string, Row>;
  /** Check name → `ok`, `FAIL` or `SKIP`, and its detail. */
  checks: Map<string, { mark: string; detail: string }>;
  /** The progress lines, without their time stamps. */
  progress: string[];
  /** The run folder, from the command's summary line. */
  runDir: string;
  /** Milliseconds from the "workload ... exited" progress line to the command's exit. */
  afterWorkloadMs: number | undefined;
}

function buildpodRun(c: Case, mode: Mode): Promise<RunOutput> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("BUILDPOD_")),
  );
  const args = [MAIN, "run", "--file", c.file, "--state-dir", c.stateDir, "--sync-cache"];
  const child = spawn(process.execPath, [...args, "--sidecar-mode", mode], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let workloadExitedAt: number | undefined;
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    if (workloadExitedAt === undefined && /\] workload workload: exited with/.test(stdout)) {
      workloadExitedAt = Date.now();
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const ended = Date.now();
      const afterWorkloadMs = workloadExitedAt === undefined ? undefined : ended - workloadExitedAt;
      resolve({ code, stdout, stderr, ...readOutput(stdout, stderr), afterWorkloadMs });
    });
  });
}

/** The table, checks and progress from stdout; the run folder from the log line on stderr. */
function readOutput(stdout: string, stderr: string) {
  const lines = stdout.split("\n");
  const rows = new Map<string, Row>();
  const header = lines.findIndex((l) => /^container\s+role\s+exit\s+duration\s+counts$/.test(l));
  for (const line of header < 0 ? [] : lines.slice(header + 2)) {
    if (line === "") break;
    const [name = "", role = "", exit = "", , counts = ""] = line.split(/\s{2,}/);
    const pairs = counts.split(" ").filter((p) => p.includes("="));
    rows.set(name, {
      role,
      exit,
      counts: Object.fromEntries(pairs.map((p) => [p.split("=")[0], Number(p.split("=")[1])])),
    });
  }
  const checks = new Map<string, { mark: string; detail: string }>();
  for (const line of lines) {
    const match = /^(ok|FAIL|SKIP) +([^:]+): (.*)$/.exec(line);
    if (match?.[1] && match[2] && match[3] !== undefined) {
      checks.set(match[2], { mark: match[1], detail: match[3] });
    }
  }
  const progress = lines
    .filter((l) => /^\[ *[\d.]+s\] /.test(l))
    .map((l) => l.replace(/^\[ *[\d.]+s\] /, ""));
  const summary = stderr
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes('"msg":"summary"'))
    .map((l) => JSON.parse(l) as { summary?: { run_dir?: string } })
    .at(-1);
  return { rows, checks, progress, runDir: summary?.summary?.run_dir ?? "" };
}

/** Failure messages carry the whole output: a failed run is read from it. */
function shown(out: RunOutput): string {
  return `exit code ${out.code}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`;
}

/** The sink's records whose message is exactly `message`. */
function sinkRecords(out: RunOutput, message: string): { labels?: Record<string, string> }[] {
  const file = path.join(out.runDir, "sink", "records.jsonl");
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { message: string; labels?: Record<string, string> })
    .filter((r) => r.message === message);
}

function volume(out: RunOutput, name: string, ...rest: string[]): string {
  return path.join(out.runDir, "volumes", name, ...rest);
}

// ---------------------------------------------------------------------------------------------
// Assertions shared by the cases

/**
 * Every check ran and passed; the log check counted exactly the lines the workload wrote. The
 * run's exit code says whether the job succeeded: 0 only when the workload exited 0 too.
 */
function expectEveryCheckPassed(out: RunOutput, linesWritten: number, workloadExit: number): void {
  expect([...out.checks.keys()], shown(out)).toEqual(CHECKS);
  const [logs, artifacts] = CHECKS as [string, string, string];
  for (const [name, check] of out.checks) {
    expect(check.mark, `${name}: ${check.detail}`).toBe("ok");
  }
  expect(out.checks.get(logs)?.detail).toBe(
    `${linesWritten} written, ${linesWritten} received, 0 missing, 0 duplicated, 0 unexpected`,
  );
  expect(out.checks.get(artifacts)?.detail).toMatch(/^2\/2 files \(\d+ bytes\) match$/);
  expect(out.code, shown(out)).toBe(workloadExit === 0 ? 0 : 1);
}

/** The containers ran in the pod's order with these exit codes; the sidecars all drained. */
function expectContainers(out: RunOutput, workloadExit: number): void {
  expect([...out.rows.keys()], shown(out)).toEqual([
    "agent-injector",
    "repo-mirror",
    "artifact-downloader",
    "workload",
    ...SIDECARS,
  ]);
  for (const name of ["agent-injector", "repo-mirror", "artifact-downloader"]) {
    expect(out.rows.get(name), `${name}\n${shown(out)}`).toMatchObject({ role: "init", exit: "0" });
  }
  expect(out.rows.get("workload")).toMatchObject({ role: "workload", exit: String(workloadExit) });
  for (const name of SIDECARS) {
    expect(out.rows.get(name), `${name}\n${shown(out)}`).toMatchObject({
      role: "sidecar",
      exit: "0",
    });
  }
  expect(out.progress.filter((l) => l.includes(KILLED))).toEqual([]);
}

/** How the sidecars learned that the workload ended, by mode. */
function expectStoppedAsModeSays(out: RunOutput, mode: Mode, workloadExit: number): void {
  const terms = out.progress.filter((l) => l.endsWith(": SIGTERM"));
  const marker = volume(out, "lifecycle", "workload-finished");
  if (mode === "native") {
    // One at a time, in reverse start order; no wrapper, so no marker.
    expect(terms).toEqual([...SIDECARS].reverse().map((s) => `sidecar ${s}: SIGTERM`));
    expect(existsSync(marker)).toBe(false);
  } else {
    expect(terms).toEqual([]);
    expect(readFileSync(marker, "utf8")).toBe(`${workloadExit}\n`);
  }
}

// ---------------------------------------------------------------------------------------------

describe.each<Mode>(["native", "classic"])("buildpod run, %s sidecars", (mode) => {
  it(
    "passes every check, and the next run downloads what the first one uploaded",
    async () => {
      const c = newCase();
      const lines = outputLines(c);

      const first = await buildpodRun(c, mode);
      expect(first.progress).toContain(
        `running local-run-test (${mode} sidecars) in ${first.runDir}`,
      );
      expectContainers(first, 0);
      expectStoppedAsModeSays(first, mode, 0);
      const written = lines + HEADER_LINES + 1 + lines;
      expectEveryCheckPassed(first, written, 0);
      expect(first.rows.get("workload")?.counts.output_lines).toBe(lines + HEADER_LINES + 1);
      expect(first.rows.get("log-exporter")?.counts.lines).toBe(written);
      expect(first.rows.get("artifact-uploader")?.counts.uploaded).toBe(2);
      expect(first.rows.get("metrics-exporter")?.counts.files).toBe(1);
      // Nothing to download on a first run; it says so instead of failing.
      expect(first.rows.get("artifact-downloader")?.counts.downloaded).toBe(0);
      expect(first.stdout).toContain("note artifacts: first run");
      // The workload built the commit repo-mirror checked out: origin's HEAD.
      const head = git(path.join(c.dir, "origin"), "rev-parse", "HEAD");
      expect(sinkRecords(first, `building ${head}: add the program`)).toHaveLength(1);
      // The sink holds each line once, with the description's labels.
      const last = sinkRecords(first, `compile unit_${lines}.c: ok`);
      expect(last).toHaveLength(1);
      expect(last[0]?.labels).toEqual({ suite: "local-run" });
      expect(sinkRecords(first, `case ${lines}: passed`)).toHaveLength(1);

      const second = await buildpodRun(c, mode);
      expectContainers(second, 0);
      expectEveryCheckPassed(second, written, 0);
      expect(second.rows.get("artifact-downloader")?.counts.downloaded).toBe(1);
      const report = ["junit", "report.xml"];
      expect(readFileSync(volume(second, "artifacts-imported", ...report), "utf8")).toBe(
        readFileSync(volume(first, "artifacts", ...report), "utf8"),
      );
      expect(sinkRecords(second, `the previous build's report: ${lines} cases`)).toHaveLength(1);
    },
    RUN_TIMEOUT,
  );

  it(
    "a workload killed with SIGKILL: the sidecars still drain and exit within the grace period",
    async () => {
      const c = newCase((spec) => {
        spec.workload.env.KILL = "self";
      });
      const lines = outputLines(c);

      const out = await buildpodRun(c, mode);
      // Every container did its part and every check passed; the job failed (exit code 1)
      // because the workload did: 137 (128 + SIGKILL), in the table.
      expectContainers(out, 137);
      expectStoppedAsModeSays(out, mode, 137);
      // Half the lines, to stdout and to the file, before the kill; in classic mode the
      // wrapper's shell adds its report of the kill, "Killed", on stderr.
      const killed = mode === "classic" ? 1 : 0;
      expectEveryCheckPassed(out, lines / 2 + HEADER_LINES + killed + lines / 2, 137);
      // Generous slack for a loaded machine over the grace period: the bound the run promises.
      expect(out.afterWorkloadMs, shown(out)).toBeLessThan(gracePeriodMs(c.file, mode) + 30_000);
    },
    RUN_TIMEOUT,
  );
});

describe("buildpod run, classic sidecars, the marker wrapper killed too", () => {
  it(
    "ends the sidecars without the grace period's SIGKILL: the run writes the marker",
    async () => {
      const c = newCase((spec) => {
        spec.workload.env.KILL = "wrapper";
      });
      const lines = outputLines(c);

      const out = await buildpodRun(c, "classic");
      expectContainers(out, 137);
      // In a cluster the sidecars' pod watch reports the end; here the run writes the marker.
      expect(out.progress).toContain(
        "workload workload: no marker written; the run writes it (137)",
      );
      expectStoppedAsModeSays(out, "classic", 137);
      expectEveryCheckPassed(out, lines / 2 + HEADER_LINES + lines / 2, 137);
      expect(out.afterWorkloadMs).toBeLessThan(gracePeriodMs(c.file, "classic") + 30_000);
    },
    RUN_TIMEOUT,
  );
});

describe("buildpod run, a failing init container", () => {
  it(
    "stops at repo-mirror and shows its exit code and last log lines",
    async () => {
      const missing = "0123456789abcdef0123456789abcdef01234567";
      const c = newCase((spec) => {
        spec.repository.commit = missing;
      });

      const out = await buildpodRun(c, "native");
      expect(out.code, shown(out)).toBe(1);
      // The first init container ran; nothing after the failed one did.
      expect([...out.rows.keys()], shown(out)).toEqual(["agent-injector", "repo-mirror"]);
      expect(out.rows.get("agent-injector")?.exit).toBe("0");
      expect(out.rows.get("repo-mirror")?.exit).toBe("1");
      expect(out.progress.some((l) => l.startsWith("workload") || l.startsWith("sidecar"))).toBe(
        false,
      );
      expect(out.checks.size).toBe(0);

      // The failure names the container and its exit code, then its last lines, readable:
      // `level: message` instead of the JSON log lines the container printed.
      const lines = out.stdout.split("\n");
      const at = lines.indexOf(
        "FAIL init container repo-mirror failed with exit code 1; its last lines:",
      );
      expect(at, shown(out)).toBeGreaterThan(0);
      const tail: string[] = [];
      for (const line of lines.slice(at + 1)) {
        if (!line.startsWith("    ")) break;
        tail.push(line.trim());
      }
      expect(tail.length).toBeGreaterThan(0);
      for (const line of tail) expect(line).not.toMatch(/^\{/);
      // The error names the commit, once: not repeated by the causes' messages.
      const errors = tail.filter((l) => l.startsWith("error: "));
      expect(errors, tail.join("\n")).toHaveLength(1);
      expect(errors[0]?.split(missing)).toHaveLength(2);
      expect(errors[0]).toContain("[code=REPO_MIRROR_UNKNOWN_COMMIT]");
      // The command's own error says the same, with where the whole log is.
      expect(out.stdout + out.stderr).toMatch(
        /init container repo-mirror failed with exit code 1.*repo-mirror\.log/s,
      );
    },
    RUN_TIMEOUT,
  );
});
