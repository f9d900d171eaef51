/**
 * The bundles that `pnpm run build` makes run with `node` alone. Each program is bundled by the
 * build script's own code into a temporary directory, copied on its own into an empty one, and
 * must answer `--version` and `--help` there. (The test does not rebuild `dist/`: other test
 * files run those bundles at the same time.)
 */
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BundleResult,
  type BundleSpec,
  buildBundles,
  bundleVersion,
  findBundles,
} from "../scripts/build.ts";
import { startFakeElasticsearch } from "./fakes/elasticsearch.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

/** The commands the issues give each program; every one must show up in its --help. */
const ISSUE_COMMANDS: Record<string, string[]> = {
  "repo-mirror": ["checkout", "sync"], // issue 3
  "agent-injector": ["inject", "run"], // issue 7
};

// A version no real build would produce, so the output proves the define reached the bundle.
const VERSION = `0.0.0-bundletest.${process.pid}`;
const specs = findBundles(ROOT);
const results = new Map<string, BundleResult>();
const work = mkdtempSync(path.join(tmpdir(), "buildpod-bundles-"));

beforeAll(async () => {
  const inTemp = specs.map((s) => ({
    ...s,
    outfile: path.join(work, "out", s.name, `${s.name}.mjs`),
  }));
  for (const result of await buildBundles(inTemp, { version: VERSION })) {
    results.set(result.spec.name, result);
  }
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Copies a built bundle, alone, into a fresh directory and returns its path there. */
function isolate(name: string): string {
  const built = results.get(name);
  if (!built?.ok) {
    const why = built?.errors.map((e) => e.text).join("; ") ?? "not built";
    throw new Error(`${name} did not bundle: ${why}`);
  }
  const dir = path.join(work, "run", name);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.mjs`);
  copyFileSync(built.spec.outfile, file);
  return file;
}

/** Runs a bundle with Node 24 and an environment that points at nothing in the repository. */
function run(bundle: string, args: string[]) {
  const result = spawnSync(process.execPath, [bundle, ...args], {
    cwd: path.dirname(bundle),
    env: { PATH: process.env.PATH, HOME: path.dirname(bundle) },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The names under "Commands:" in a --help text. */
function listedCommands(help: string): string[] {
  const section = /^Commands:\n((?: {2}\S.*\n)+)/m.exec(help)?.[1] ?? "";
  return section
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name): name is string => Boolean(name));
}

describe("the programs found to bundle", () => {
  it("include every container", () => {
    const containers = ["repo-mirror", "artifact-downloader", "agent-injector", "log-exporter"];
    containers.push("artifact-uploader", "metrics-exporter");
    expect(specs.map((s) => s.name)).toEqual(expect.arrayContaining(containers));
  });

  it("run from a directory with no node_modules anywhere above it", () => {
    // Node resolves bare imports from the file's directory upwards; one there would hide a
    // dependency missing from a bundle.
    for (let dir = work; ; dir = path.dirname(dir)) {
      expect(existsSync(path.join(dir, "node_modules")), `${dir}/node_modules`).toBe(false);
      if (dir === path.dirname(dir)) break;
    }
  });
});

describe.each(specs.map((s) => [s.name, s] as [string, BundleSpec]))("bundle %s", (name) => {
  it("bundles into one file importing nothing but Node's own modules", () => {
    const bundle = isolate(name);
    const text = readFileSync(bundle, "utf8");
    const imports = [...text.matchAll(/^import\s[^;]*?from\s*"([^"]+)"/gm)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0); // the createRequire banner at least
    expect(imports.filter((spec) => !isBuiltin(spec ?? ""))).toEqual([]);
    expect(text.startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("prints the build's version with --version, alone in an empty directory", () => {
    const { status, stdout, stderr } = run(isolate(name), ["--version"]);
    expect(stderr).toBe("");
    expect(status).toBe(0);
    expect(stdout).toMatch(new RegExp(`^[a-z][a-z-]* ${VERSION.replaceAll(".", "\\.")}\\n$`));
  });

  it("exits 0 on --help and describes every command", () => {
    const bundle = isolate(name);
    const { status, stdout } = run(bundle, ["--help"]);
    expect(status).toBe(0);
    expect(stdout).toContain("Usage:");

    const commands = listedCommands(stdout);
    expect(commands).toEqual(expect.arrayContaining(ISSUE_COMMANDS[name] ?? []));
    if (commands.length === 0) {
      // A single-command program shows that command's flags under its own name.
      expect(stdout).toMatch(/^Flags of [a-z-]+ \((init|sidecar|tool)\):$/m);
    }
    for (const command of commands) {
      const help = run(bundle, [command, "--help"]);
      expect(help.status, `${name} ${command} --help`).toBe(0);
      expect(help.stdout).toContain(`Flags of "${command}"`);
    }
  });
});

describe("the build script", () => {
  const programs = path.join(work, "programs");
  const program = (name: string, source: string): BundleSpec => {
    const dir = path.join(programs, name);
    mkdirSync(path.join(dir, "src"), { recursive: true });
    const entry = path.join(dir, "src", "main.ts");
    writeFileSync(entry, source);
    return { name, dir, entry, outfile: path.join(dir, "dist", `${name}.mjs`) };
  };

  it("names the program that failed to bundle and why, and still builds the others", async () => {
    const good = program("good", 'console.log("good");\n');
    const bad = program("bad", 'import x from "no-such-package-anywhere";\nconsole.log(x);\n');
    const [goodResult, badResult] = await buildBundles([good, bad], { version: VERSION });

    expect(goodResult?.ok).toBe(true);
    expect(existsSync(good.outfile)).toBe(true);
    expect(badResult?.spec.name).toBe("bad");
    expect(badResult?.ok).toBe(false);
    expect(badResult?.errors.map((e) => e.text).join("\n")).toContain("no-such-package-anywhere");
    expect(existsSync(bad.outfile)).toBe(false);
  });

  it("leaves native addons out of the bundle and reports them", async () => {
    const spec = program("addon", 'import "./binding.node";\nconsole.log("loaded");\n');
    const [result] = await buildBundles([spec], { version: VERSION });
    expect(result?.ok).toBe(true);
    expect(result?.nativeAddons).toEqual(["./binding.node"]);
    expect(readFileSync(spec.outfile, "utf8")).toMatch(/import ?"\.\/binding\.node"/);
  });

  it("writes a notice naming every bundled package and its licence", () => {
    const built = results.get("repo-mirror");
    const notice = readFileSync(`${built?.spec.outfile}.LEGAL.txt`, "utf8");
    expect(notice).toMatch(/^ {2}pino@\d+\.\d+\.\d+ {2}MIT$/m);
    expect(notice).toMatch(/^ {2}zod@\d+\.\d+\.\d+ {2}MIT$/m);
  });

  it("versions bundles as the root package.json version plus the git revision", () => {
    const saved = {
      version: process.env.BUILDPOD_VERSION,
      revision: process.env.BUILDPOD_REVISION,
    };
    delete process.env.BUILDPOD_VERSION;
    delete process.env.BUILDPOD_REVISION;
    try {
      const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
      const git = spawnSync("git", ["rev-parse", "--short", "HEAD"], {
        cwd: ROOT,
        encoding: "utf8",
      });
      const expected = git.status === 0 ? `${pkg.version}+${git.stdout.trim()}` : pkg.version;
      expect(bundleVersion(ROOT)).toBe(expected);

      process.env.BUILDPOD_VERSION = "1.2.3";
      expect(bundleVersion(ROOT)).toBe("1.2.3");
    } finally {
      if (saved.version === undefined) delete process.env.BUILDPOD_VERSION;
      else process.env.BUILDPOD_VERSION = saved.version;
      if (saved.revision !== undefined) process.env.BUILDPOD_REVISION = saved.revision;
    }
  });
});

/**
 * What a bundle costs at start is what it loads: `node:http2` alone adds about 9 MiB of RSS,
 * OpenSSL with `node:tls` about 2 (issue 2's and issue 5's memory goals). A preload records
 * the built-in modules a run loaded, so these tests see the bundles load only what they use.
 */
function recordLoads(): { preload: string; loaded(): string[] } {
  const dir = mkdtempSync(path.join(work, "loads-"));
  const preload = path.join(dir, "record-loads.cjs");
  const out = path.join(dir, "loaded.txt");
  writeFileSync(
    preload,
    `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(out)}, process.moduleLoadList.join("\\n")));\n`,
  );
  const loaded = () =>
    readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("NativeModule "))
      .map((l) => l.slice("NativeModule ".length));
  return { preload, loaded };
}

describe("what the bundles load", () => {
  it.each(specs.map((s) => s.name))("%s loads no HTTP/2 or TLS for --version", (name) => {
    const loads = recordLoads();
    const result = spawnSync(
      process.execPath,
      ["--require", loads.preload, isolate(name), "--version"],
      {
        env: { PATH: process.env.PATH },
        encoding: "utf8",
      },
    );
    expect(result.status, result.stderr).toBe(0);
    expect(loads.loaded()).not.toContain("http2");
    expect(loads.loaded()).not.toContain("tls");
  });

  it("log-exporter ships to Elasticsearch over HTTP without undici, HTTP/2 or TLS", async () => {
    const es = await startFakeElasticsearch();
    try {
      const dir = mkdtempSync(path.join(work, "log-exporter-es-"));
      for (const sub of ["logs", "lifecycle", "state"]) mkdirSync(path.join(dir, sub));
      writeFileSync(path.join(dir, "logs", "build.log"), "one\ntwo\nthree\n");
      writeFileSync(path.join(dir, "lifecycle", "workload-finished"), "0\n");
      const sinks = path.join(dir, "sinks.yaml");
      const sink = { type: "elasticsearch", nodes: [es.url], index: "logs" };
      writeFileSync(sinks, JSON.stringify({ default: "es", sinks: { es: sink } }));
      const loads = recordLoads();
      const args = ["--logs", "logs", "--lifecycle-dir", "lifecycle", "--state-dir", "state"];
      const child = spawn(
        process.execPath,
        ["--require", loads.preload, isolate("log-exporter"), ...args, "--sinks", sinks],
        { cwd: dir, env: { PATH: process.env.PATH, BUILDKITE_JOB_ID: "job-1" }, stdio: "ignore" },
      );
      const [code] = (await once(child, "exit")) as [number];

      expect(code).toBe(0);
      expect([...es.documents("logs").values()].map((d) => d?.message).sort()).toEqual([
        "one",
        "three",
        "two",
      ]);
      // undici would load node:http2 as it is evaluated (its HTTP/2 client).
      for (const module of ["http2", "tls", "https"]) expect(loads.loaded()).not.toContain(module);
    } finally {
      await es.close();
    }
  });
});
