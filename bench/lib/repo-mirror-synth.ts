/**
 * A deterministic synthetic repository for the repo-mirror benchmark, built with `git
 * fast-import` (one process, no work tree) and cached under `.bench/repo-mirror/` by its
 * parameters, so reruns start at once.
 *
 * Shape: one root commit with `files` text files in a two-level directory tree, then `commits`
 * commits that each edit a few lines of three files and rewrite one file entirely, so history
 * holds both small deltas and whole new blobs, as real repositories do. The text mixes words
 * and hex tokens so that it compresses about as well as source code. Every byte comes from a
 * seeded PRNG: the same parameters give the same commits on every machine.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface SynthParams {
  files: number;
  commits: number;
  /** Average bytes per file. */
  fileBytes: number;
}

/** Parameters from the environment (BENCH_RM_FILES, BENCH_RM_COMMITS, BENCH_RM_FILE_BYTES). */
export function synthParams(env = process.env): SynthParams {
  return {
    files: Number(env.BENCH_RM_FILES ?? 50_000),
    commits: Number(env.BENCH_RM_COMMITS ?? 20_000),
    fileBytes: Number(env.BENCH_RM_FILE_BYTES ?? 4096),
  };
}

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Text {
  private readonly rand: () => number;
  private readonly words: string[];
  constructor(seed: number) {
    this.rand = prng(seed);
    const letters = "abcdefghijklmnopqrstuvwxyz";
    this.words = Array.from({ length: 4096 }, () => {
      const n = 3 + Math.floor(this.rand() * 7);
      let w = "";
      for (let i = 0; i < n; i++) w += letters[Math.floor(this.rand() * 26)];
      return w;
    });
  }

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  line(): string {
    const parts: string[] = [];
    const n = 4 + this.int(8);
    for (let i = 0; i < n; i++) {
      parts.push(
        this.rand() < 0.2
          ? this.int(0xffffffff).toString(16).padStart(8, "0")
          : (this.words[this.int(this.words.length)] as string),
      );
    }
    return `${"  ".repeat(this.int(4))}${parts.join(" ")}`;
  }

  lines(bytes: number): string[] {
    const out: string[] = [];
    let size = 0;
    while (size < bytes) {
      const l = this.line();
      out.push(l);
      size += l.length + 1;
    }
    return out;
  }
}

function pathOf(i: number, files: number): string {
  const perDir = Math.max(1, Math.ceil(files / 2000));
  const dir = Math.floor(i / perDir);
  return `pkg${String(Math.floor(dir / 40)).padStart(2, "0")}/mod${String(dir % 40).padStart(2, "0")}/file${String(i % perDir).padStart(3, "0")}.txt`;
}

/** Writes one fast-import command, waiting for the pipe when it is full. */
async function put(stdin: NodeJS.WritableStream, chunk: string): Promise<void> {
  if (!stdin.write(chunk)) await new Promise((r) => stdin.once("drain", r));
}

function blob(content: string): string {
  return `data ${Buffer.byteLength(content)}\n${content}\n`;
}

function header(n: number): string {
  const when = 1_700_000_000 + n * 600;
  const msg = n === 0 ? "initial import\n" : `change ${n}\n`;
  return (
    `commit refs/heads/main\n` +
    `author Bench <bench@example.invalid> ${when} +0000\n` +
    `committer Bench <bench@example.invalid> ${when} +0000\n` +
    `data ${Buffer.byteLength(msg)}\n${msg}`
  );
}

/** Streams the whole history into `git fast-import` running in `gitDir`. */
async function importHistory(gitDir: string, p: SynthParams, log: (s: string) => void) {
  const child = spawn("git", ["fast-import", "--quiet", "--done"], {
    cwd: gitDir,
    stdio: ["pipe", "inherit", "inherit"],
  });
  const exited = new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  const t = new Text(20261203);
  const contents: string[][] = [];

  await put(child.stdin, header(0));
  for (let i = 0; i < p.files; i++) {
    const lines = t.lines(p.fileBytes * (0.5 + t.int(1000) / 1000));
    contents.push(lines);
    await put(
      child.stdin,
      `M 100644 inline ${pathOf(i, p.files)}\n${blob(`${lines.join("\n")}\n`)}`,
    );
  }
  await put(child.stdin, "\n");

  for (let c = 1; c < p.commits; c++) {
    let cmd = header(c);
    for (let k = 0; k < 4; k++) {
      const i = t.int(p.files);
      const lines = contents[i] as string[];
      if (k === 3) {
        contents[i] = t.lines(p.fileBytes * (0.5 + t.int(1000) / 1000));
      } else {
        for (let e = 0; e < 3; e++) lines[t.int(lines.length)] = t.line();
      }
      cmd += `M 100644 inline ${pathOf(i, p.files)}\n${blob(`${(contents[i] as string[]).join("\n")}\n`)}`;
    }
    await put(child.stdin, `${cmd}\n`);
    if (c % 5000 === 0) log(`  ${c} of ${p.commits} commits`);
  }
  await put(child.stdin, "done\n");
  child.stdin.end();
  if ((await exited) !== 0) throw new Error("git fast-import failed");
}

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync("git", args, { cwd, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed`);
}

/**
 * The bare repository for `p`, generated on first use (minutes for the full size) and then
 * reused. A half-built one (interrupted run) is never reused: it is built under a temporary
 * name and renamed when complete.
 */
export async function synthRepo(
  cacheDir: string,
  p: SynthParams,
  log: (s: string) => void,
): Promise<string> {
  const name = `synth-v1-f${p.files}-c${p.commits}-b${p.fileBytes}.git`;
  const final = path.join(cacheDir, name);
  if (existsSync(path.join(final, "buildpod-complete"))) return final;

  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  git(tmp, "init", "--quiet", "--bare", "--initial-branch=main");
  const started = performance.now();
  log(`generating ${p.files} files and ${p.commits} commits with git fast-import ...`);
  await importHistory(tmp, p, log);
  log(
    `  imported in ${((performance.now() - started) / 1000).toFixed(1)} s; repacking as a server would ...`,
  );
  // Deltas between versions of one path, a bitmap for fast counting, as on a real server.
  git(tmp, "repack", "-a", "-d", "-q", "--window=10", "--depth=50", "--write-bitmap-index");
  git(tmp, "pack-refs", "--all");
  writeFileSync(path.join(tmp, "buildpod-complete"), new Date().toISOString());
  renameSync(tmp, final);
  log(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return final;
}

/** Appends `n` commits to `main` of a bare repository (the "origin is ahead" case). */
export async function appendCommits(gitDir: string, n: number, seed: number): Promise<void> {
  const child = spawn("git", ["fast-import", "--quiet", "--done"], {
    cwd: gitDir,
    stdio: ["pipe", "inherit", "inherit"],
  });
  const exited = new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  const t = new Text(seed);
  const tip = spawnSync("git", ["rev-parse", "refs/heads/main"], {
    cwd: gitDir,
    encoding: "utf8",
  }).stdout.trim();
  for (let c = 0; c < n; c++) {
    let cmd = header(1_000_000 + seed + c);
    if (c === 0) cmd += `from ${tip}\n`;
    cmd += `M 100644 inline ahead/ahead-${seed}-${c}.txt\n${blob(`${t.lines(4096).join("\n")}\n`)}`;
    await put(child.stdin, `${cmd}\n`);
  }
  await put(child.stdin, "done\n");
  child.stdin.end();
  if ((await exited) !== 0) throw new Error("git fast-import (append) failed");
}
