import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { simpleGit } from "simple-git";

/** Fixed identity and clock so fixture commits are reproducible. */
const GIT_ENV = {
  GIT_AUTHOR_NAME: "fixture",
  GIT_AUTHOR_EMAIL: "fixture@example.invalid",
  GIT_COMMITTER_NAME: "fixture",
  GIT_COMMITTER_EMAIL: "fixture@example.invalid",
  GIT_CONFIG_NOSYSTEM: "1",
  HOME: tmpdir(),
};

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `repo-mirror-${prefix}-`));
}

/** Runs git synchronously in a fixture (test setup only). */
export function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    env: { ...process.env, ...GIT_ENV },
    encoding: "utf8",
  }).trim();
}

/**
 * A bare origin repository plus a work tree that pushes to it. Commits are made with
 * simple-git, the library the project prefers for plain porcelain.
 */
export class Origin {
  readonly bare: string;
  readonly work: string;
  readonly name: string;
  private counter = 0;
  constructor(root: string, name: string) {
    this.name = name;
    this.bare = join(root, `${name}.git`);
    this.work = join(root, `${name}-work`);
    mkdirSync(this.work, { recursive: true });
    sh(root, "init", "--quiet", "--bare", "--initial-branch=main", this.bare);
    sh(this.work, "init", "--quiet", "--initial-branch=main");
    sh(this.work, "remote", "add", "origin", this.bare);
    // Lets a checkout ask for any commit by name, as GitHub does for reachable ones.
    sh(this.bare, "config", "uploadpack.allowAnySHA1InWant", "true");
  }

  private git() {
    // simple-git 4 guards the environment, so identity goes in as config.
    return simpleGit({
      baseDir: this.work,
      config: ["user.name=fixture", "user.email=fixture@example.invalid"],
    });
  }

  /** Commits `files` (name -> content) and returns the new commit's name. */
  async commit(files: Record<string, string>, message?: string): Promise<string> {
    this.counter++;
    for (const [name, content] of Object.entries(files)) {
      const path = join(this.work, name);
      mkdirSync(join(path, ".."), { recursive: true });
      writeFileSync(path, content);
    }
    const g = this.git();
    await g.add(".");
    await g.commit(message ?? `commit ${this.counter}`);
    return (await g.revparse(["HEAD"])).trim();
  }

  async push(ref = "main", force = false): Promise<void> {
    await this.git().push(["origin", `${force ? "+" : ""}HEAD:refs/heads/${ref}`]);
  }

  /** Commits and pushes `n` commits, returning the last commit. */
  async commits(n: number, prefix = "f"): Promise<string> {
    let last = "";
    for (let i = 0; i < n; i++)
      last = await this.commit({ [`${prefix}${this.counter}.txt`]: `${prefix} ${i}\n` });
    await this.push();
    return last;
  }
}

/** `git daemon` on 127.0.0.1 at a free port, serving every repository under `base`. */
export class Daemon {
  readonly base: string;
  port = 0;
  private child?: ChildProcess;
  constructor(base: string) {
    this.base = base;
  }

  url(name: string): string {
    return `git://127.0.0.1:${this.port}/${name}.git`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.child = spawn(
      "git",
      [
        "daemon",
        "--reuseaddr",
        "--export-all",
        "--listen=127.0.0.1",
        `--port=${this.port}`,
        `--base-path=${this.base}`,
        this.base,
      ],
      { stdio: "ignore" },
    );
    for (let i = 0; i < 100; i++) {
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    throw new Error(`git daemon did not start on port ${this.port}`);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill();
    await exited;
  }
}

/** A port that nothing listens on once the probe server is closed. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host: "127.0.0.1", port });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Smart HTTP on 127.0.0.1 through the real `git http-backend` (CGI), refusing any request
 * without the expected Authorization header, and recording the headers it saw.
 */
export class HttpGitServer {
  readonly base: string;
  readonly expectedAuth: string;
  readonly seenAuth: string[] = [];
  port = 0;
  private server?: import("node:http").Server;
  constructor(base: string, expectedAuth: string) {
    this.base = base;
    this.expectedAuth = expectedAuth;
  }

  url(name: string): string {
    return `http://127.0.0.1:${this.port}/${name}.git`;
  }

  async start(): Promise<void> {
    const { createServer: createHttp } = await import("node:http");
    this.server = createHttp((req, res) => {
      this.seenAuth.push(req.headers.authorization ?? "");
      if (req.headers.authorization !== this.expectedAuth) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="test"' }).end();
        return;
      }
      const [path = "", query = ""] = (req.url ?? "").split("?");
      const cgi = spawn("git", ["http-backend"], {
        env: {
          PATH: process.env.PATH,
          GIT_PROJECT_ROOT: this.base,
          GIT_HTTP_EXPORT_ALL: "1",
          PATH_INFO: decodeURIComponent(path),
          QUERY_STRING: query,
          REQUEST_METHOD: req.method,
          CONTENT_TYPE: req.headers["content-type"] ?? "",
          HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
          HTTP_GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        },
      });
      req.pipe(cgi.stdin);
      const chunks: Buffer[] = [];
      cgi.stdout.on("data", (c: Buffer) => chunks.push(c));
      cgi.on("close", () => {
        const out = Buffer.concat(chunks);
        const split = out.indexOf("\r\n\r\n");
        const head = out.subarray(0, split).toString("latin1");
        const headers: Record<string, string> = {};
        let status = 200;
        for (const line of head.split("\r\n")) {
          const [k = "", v = ""] = line.split(/:\s*(.*)/s);
          if (k.toLowerCase() === "status") status = Number.parseInt(v, 10);
          else if (k) headers[k] = v;
        }
        res.writeHead(status, headers).end(out.subarray(split + 4));
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, "127.0.0.1", r));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}
