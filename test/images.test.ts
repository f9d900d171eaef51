/**
 * No Docker engine runs here, so the image definitions are checked by reading them: the bake
 * file through a real HCL parser, the Dockerfile through a small parser of its instructions.
 * Every container must have a bake target whose Dockerfile, context and stage exist, whose
 * COPY sources are files the build produces (or that exist) and that the build context lets
 * through, and which runs its bundle as a non-root user on both platforms. The script that
 * downloads buildkite-agent is run for real against a loopback stand-in for GitHub releases.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "@cdktf/hcl2json";
import { Pod } from "kubernetes-models/v1/Pod";
import picomatch from "picomatch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { findBundles } from "../scripts/build.ts";
import { NODE_FLAGS } from "../scripts/node-flags.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CONTAINERS = [
  "repo-mirror",
  "artifact-downloader",
  "agent-injector",
  "log-exporter",
  "artifact-uploader",
  "metrics-exporter",
];
const EXAMPLES = ["custom-sidecar"];
// biome-ignore lint/suspicious/noExplicitAny: hcl2json returns untyped JSON
type Json = any;

// ---- the bake file ----------------------------------------------------------------------------

interface Target {
  context: string;
  dockerfile: string;
  target?: string;
  platforms: string[];
  tags: string[];
  args: Record<string, string>;
}

let bake: Json;
let variables: Record<string, string>;

beforeAll(async () => {
  bake = await parse("docker-bake.hcl", readFileSync(path.join(ROOT, "docker-bake.hcl"), "utf8"));
  variables = Object.fromEntries(
    Object.entries(bake.variable ?? {}).map(([name, [v]]: [string, Json]) => [name, v.default]),
  );
});

/**
 * Evaluates the few HCL expressions the bake file uses: `${VAR}` inside strings and
 * `${split("sep", VAR)}`. Anything else fails the test instead of passing unchecked.
 */
function evaluate(value: string): string | string[] {
  const split = /^\$\{split\("([^"]*)",\s*(\w+)\)\}$/.exec(value);
  if (split) return variable(split[2] as string).split(split[1] as string);
  const text = value.replace(/\$\{(\w+)\}/g, (_, name: string) => variable(name));
  if (text.includes("${")) throw new Error(`cannot evaluate ${value} in docker-bake.hcl`);
  return text;
}

function variable(name: string): string {
  const value = variables[name];
  if (value === undefined) throw new Error(`docker-bake.hcl uses undeclared variable ${name}`);
  return value;
}

/** A target with its `inherits` applied (parents first, maps merged) and expressions evaluated. */
function resolveTarget(name: string): Target {
  const block = bake.target?.[name]?.[0];
  if (!block) throw new Error(`docker-bake.hcl has no target "${name}"`);
  const merged: Json = { args: {} };
  for (const parent of block.inherits ?? []) {
    const resolved = resolveTarget(parent);
    Object.assign(merged, resolved, { args: { ...merged.args, ...resolved.args } });
  }
  for (const [key, value] of Object.entries(block as Json)) {
    if (key === "inherits") continue;
    if (key === "args") {
      const args = Object.entries(value as Record<string, string>).map(([k, v]) => [
        k,
        evaluate(v) as string,
      ]);
      merged.args = { ...merged.args, ...Object.fromEntries(args) };
    } else if (Array.isArray(value)) {
      merged[key] = value.map((v) => evaluate(v));
    } else {
      merged[key] = typeof value === "string" ? evaluate(value) : value;
    }
  }
  return merged as Target;
}

// ---- the Dockerfile ---------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  name?: string;
  from: string;
  instructions: Instruction[];
}

interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Splits a Dockerfile into stages of instructions (continuations joined, heredocs skipped). */
function parseDockerfile(text: string): Dockerfile {
  const result: Dockerfile = { globalArgs: {}, stages: [] };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] as string;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} ${(lines[++i] as string).trim()}`;
    }
    const heredoc = /<<-?"?(\w+)"?/.exec(line)?.[1];
    if (heredoc) while (i + 1 < lines.length && lines[++i]?.trim() !== heredoc);

    const [, keyword = "", args = ""] = /^\s*(\w+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === "FROM") {
      const words = args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const as = words.findIndex((w) => w.toUpperCase() === "AS");
      result.stages.push({
        from: words[0] as string,
        name: as >= 0 ? words[as + 1] : undefined,
        instructions: [],
      });
    } else if (result.stages.length === 0 && upper === "ARG") {
      const [name, value = ""] = args.split("=");
      result.globalArgs[name as string] = value;
    } else {
      result.stages.at(-1)?.instructions.push({ keyword: upper, args });
    }
  }
  return result;
}

/** The stage and every stage it builds on or copies from, deepest first. */
function stageChain(file: Dockerfile, name: string): Stage[] {
  const stage = file.stages.find((s) => s.name === name);
  if (!stage) throw new Error(`no stage "${name}"`);
  const parents = [stage.from, ...copyInstructions(stage).flatMap((c) => c.from ?? [])];
  const chain = parents
    .filter((p) => file.stages.some((s) => s.name === p))
    .flatMap((p) => stageChain(file, p));
  return [...new Set([...chain, stage])];
}

/** The base-image chain only (FROM links), deepest first: what the final image is made of. */
function baseChain(file: Dockerfile, name: string): Stage[] {
  const stage = file.stages.find((s) => s.name === name);
  if (!stage) return [];
  return [...baseChain(file, stage.from), stage];
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}

function copyInstructions(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === "COPY" || i.keyword === "ADD")
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1) as string };
    });
}

/** Replaces $NAME and ${NAME} with the given values; fails on a name without one. */
function substitute(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{?(\w+)\}?/g, (_, name: string) => {
    const value = args[name];
    if (value === undefined) throw new Error(`${text}: no value for ARG ${name}`);
    return value;
  });
}

/**
 * Whether the build context lets a path through, the way .dockerignore patterns work: the last
 * pattern matching the path or one of its parent directories decides, `!` lets it through.
 */
function contextIncludes(ignoreText: string, file: string): boolean {
  const patterns = ignoreText
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const parts = file.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let included = true;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    const match = picomatch(negated ? pattern.slice(1) : pattern, { dot: true });
    if (prefixes.some((p) => match(p))) included = negated;
  }
  return included;
}

// ---- the checks -------------------------------------------------------------------------------

const dockerfiles = new Map<string, Dockerfile>();
function dockerfileOf(target: Target): Dockerfile {
  const file = path.resolve(ROOT, target.context, target.dockerfile);
  let parsed = dockerfiles.get(file);
  if (!parsed) {
    parsed = parseDockerfile(readFileSync(file, "utf8"));
    dockerfiles.set(file, parsed);
  }
  return parsed;
}

/** ARG values a target's build sees: the Dockerfile's defaults overridden by the bake args. */
function argsOf(target: Target, file: Dockerfile, stage: Stage): Record<string, string> {
  const declared = stage.instructions
    .filter((i) => i.keyword === "ARG")
    .map((i) => i.args.split("="))
    .map(([name, value = ""]) => [name as string, value]);
  return {
    ...file.globalArgs,
    ...Object.fromEntries(declared),
    ...target.args,
    TARGETARCH: "amd64",
    BUILDPLATFORM: "linux/amd64",
  };
}

/** Files `pnpm run build` writes, whether or not a build has run yet. */
const buildOutputs = new Set(
  findBundles(ROOT).flatMap((s) => [s.outfile, `${s.outfile}.LEGAL.txt`]),
);

const examplesPresent = EXAMPLES.filter((e) =>
  existsSync(path.join(ROOT, "examples", e, "src", "main.ts")),
);

describe("the entrypoint as the docs give it", () => {
  // A pod spec that must give `command` (a custom sidecar) copies it from these pages.
  const pages = ["docs/images.md", ...examplesPresent.map((e) => `examples/${e}/README.md`)].filter(
    (page) => existsSync(path.join(ROOT, page)),
  );

  it.each(pages)("%s names the node flags the images run with", (page) => {
    const text = readFileSync(path.join(ROOT, page), "utf8");
    const given = [...text.matchAll(/\["\/sbin\/tini",\s*"--",\s*"node",([^\]]*)\]/g)].map((m) =>
      [...(m[1] ?? "").matchAll(/"([^"]+)"/g)].map((q) => q[1]).filter((a) => a?.startsWith("--")),
    );
    expect(given.length).toBeGreaterThan(0);
    for (const flags of given) expect(flags).toEqual(NODE_FLAGS);
  });
});

describe("docker-bake.hcl", () => {
  it("builds every container by default and the examples as their own group", () => {
    expect(bake.group.default[0].targets.sort()).toEqual([...CONTAINERS].sort());
    expect(bake.group.examples[0].targets).toEqual(EXAMPLES);
  });

  it("declares REGISTRY, TAG, PLATFORMS, REVISION and a pinned BUILDKITE_AGENT_VERSION", () => {
    for (const name of ["REGISTRY", "TAG", "PLATFORMS", "REVISION", "BUILDKITE_AGENT_VERSION"]) {
      expect(variables, name).toHaveProperty(name);
    }
    expect(variables.BUILDKITE_AGENT_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(variables.PLATFORMS?.split(",")).toEqual(["linux/amd64", "linux/arm64"]);
  });
});

describe.each([...CONTAINERS, ...examplesPresent])("image %s", (name) => {
  it("has a target whose context, Dockerfile and stage exist", () => {
    const target = resolveTarget(name);
    expect(existsSync(path.resolve(ROOT, target.context))).toBe(true);
    expect(existsSync(path.resolve(ROOT, target.context, target.dockerfile))).toBe(true);
    expect(target.target).toBe(name);
    expect(dockerfileOf(target).stages.map((s) => s.name)).toContain(name);
  });

  it("is built for amd64 and arm64 and tagged into REGISTRY with TAG", () => {
    const target = resolveTarget(name);
    expect(target.platforms).toEqual(expect.arrayContaining(["linux/amd64", "linux/arm64"]));
    expect(target.tags).toEqual([`${variables.REGISTRY}/${name}:${variables.TAG}`]);
  });

  it("copies from the build context only what the build produces or the tree holds", () => {
    const target = resolveTarget(name);
    const file = dockerfileOf(target);
    const ignoreFile = path.resolve(ROOT, target.context, `${target.dockerfile}.dockerignore`);
    const ignore = existsSync(ignoreFile) ? readFileSync(ignoreFile, "utf8") : "";
    const copied: string[] = [];
    for (const stage of stageChain(file, name)) {
      const args = argsOf(target, file, stage);
      for (const copy of copyInstructions(stage).filter((c) => !c.from)) {
        for (const source of copy.sources.map((s) => substitute(s, args))) {
          const absolute = path.resolve(ROOT, target.context, source);
          const relative = path.relative(path.resolve(ROOT, target.context), absolute);
          expect(buildOutputs.has(absolute) || existsSync(absolute), `${source} exists`).toBe(true);
          expect(contextIncludes(ignore, relative), `${source} passes the ignore file`).toBe(true);
          copied.push(relative);
        }
      }
    }
    const dir = CONTAINERS.includes(name) ? "containers" : "examples";
    expect(copied).toContain(`${dir}/${name}/dist/${name}.mjs`);
  });

  it("runs its bundle under tini as a non-root user, with HOME in /tmp", () => {
    const target = resolveTarget(name);
    const file = dockerfileOf(target);
    const chain = baseChain(file, name).flatMap((s) => s.instructions);
    const last = (keyword: string) => chain.filter((i) => i.keyword === keyword).at(-1)?.args;

    expect(last("USER")).toBeDefined();
    expect(last("USER")).not.toMatch(/^(root|0)(:|$)/);
    const entrypoint = JSON.parse(last("ENTRYPOINT") ?? "null") as string[];
    expect(entrypoint).toEqual([
      "/sbin/tini",
      "--",
      "node",
      ...NODE_FLAGS,
      `/opt/buildpod/${name}.mjs`,
    ]);
    const bundleCopy = baseChain(file, name)
      .flatMap(copyInstructions)
      .find((c) => c.sources.some((s) => s.endsWith(`/dist/${name}.mjs`)));
    expect(bundleCopy?.dest).toBe(`/opt/buildpod/${name}.mjs`);
    const env = chain.filter((i) => i.keyword === "ENV").map((i) => i.args);
    expect(env).toContainEqual(expect.stringMatching(/(^|\s)HOME=\/tmp(\s|$)/));
    expect(env).toContainEqual(expect.stringMatching(/(^|\s)NODE_COMPILE_CACHE=\/opt\/buildpod\//));
  });

  it("starts the bundle once at build time, which fills the compile cache", () => {
    const target = resolveTarget(name);
    const stage = dockerfileOf(target).stages.find((s) => s.name === name) as Stage;
    const runs = stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    // With the flags the entrypoint gives: V8 rejects code cached under other flags.
    expect(runs).toContain(
      ["node", ...NODE_FLAGS, `/opt/buildpod/${name}.mjs`, "--version"].join(" "),
    );
  });

  it("carries the OCI source, version and revision labels from the bake variables", () => {
    const target = resolveTarget(name);
    const file = dockerfileOf(target);
    const stages = baseChain(file, name);
    const labels = stages.flatMap((stage) =>
      stage.instructions
        .filter((i) => i.keyword === "LABEL")
        .map((i) => substitute(i.args, argsOf(target, file, stage))),
    );
    const text = labels.join(" ");
    expect(text).toContain(`org.opencontainers.image.source="${variables.SOURCE}"`);
    expect(text).toContain(`org.opencontainers.image.version="${variables.TAG}"`);
    expect(text).toContain(`org.opencontainers.image.revision="${target.args.REVISION}"`);
    expect(text).toContain(`org.opencontainers.image.title="${name}"`);
  });

  it("starts from pinned base images, never latest", () => {
    const target = resolveTarget(name);
    const file = dockerfileOf(target);
    const stageNames = new Set(file.stages.map((s) => s.name));
    for (const stage of stageChain(file, name)) {
      if (stageNames.has(stage.from)) continue;
      const image = substitute(stage.from, { ...file.globalArgs, ...target.args });
      expect(image, stage.from).toMatch(/:[\w.-]+$/);
      expect(image).not.toMatch(/:latest$/);
    }
  });
});

describe("the agent-injector image", () => {
  it("passes BUILDKITE_AGENT_VERSION to the stage that downloads and verifies the agent", () => {
    const target = resolveTarget("agent-injector");
    expect(target.args.BUILDKITE_AGENT_VERSION).toBe(variables.BUILDKITE_AGENT_VERSION);

    const file = dockerfileOf(target);
    const fetcher = stageChain(file, "agent-injector").find((stage) =>
      stage.instructions.some(
        (i) => i.keyword === "RUN" && i.args.includes("fetch-buildkite-agent"),
      ),
    );
    expect(fetcher?.name).toBe("buildkite-agent");
    const argNames = fetcher?.instructions.filter((i) => i.keyword === "ARG").map((i) => i.args);
    expect(argNames).toEqual(expect.arrayContaining(["TARGETARCH", "BUILDKITE_AGENT_VERSION"]));
    const run = fetcher?.instructions.find((i) => i.keyword === "RUN" && i.args.includes("fetch"));
    expect(run?.args).toBe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile text, not a template
      'fetch-buildkite-agent "${BUILDKITE_AGENT_VERSION}" "${TARGETARCH}" /out',
    );

    const agentCopy = copyInstructions(
      file.stages.find((s) => s.name === "agent-injector") as Stage,
    ).find((c) => c.from === "buildkite-agent");
    expect(agentCopy?.dest).toBe("/opt/buildkite-agent/");
  });
});

describe("the pod in docs/images.md", () => {
  const docs = readFileSync(path.join(ROOT, "docs", "images.md"), "utf8");
  const block = /```yaml\n([\s\S]*?)```/.exec(docs)?.[1] ?? "";
  const pod = parseYaml(block) as Json;

  it("is a valid Pod", () => {
    expect(() => new Pod(pod).validate()).not.toThrow();
  });

  it("runs each buildpod image non-root on a read-only root with /tmp mounted", () => {
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    const ours = [...pod.spec.initContainers, ...pod.spec.containers].filter((c: Json) =>
      c.image.startsWith(`${variables.REGISTRY}/`),
    );
    expect(ours.length).toBeGreaterThan(0);
    for (const container of ours) {
      const name = /\/([a-z-]+):/.exec(container.image)?.[1];
      expect(CONTAINERS, container.image).toContain(name);
      expect(container.command, `${name} must keep the image's entrypoint`).toBeUndefined();
      expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(container.volumeMounts.map((m: Json) => m.mountPath)).toContain("/tmp");
    }
  });
});

// ---- images/fetch-buildkite-agent.sh against a loopback release server --------------------------

describe("images/fetch-buildkite-agent.sh", () => {
  const script = path.join(ROOT, "images", "fetch-buildkite-agent.sh");
  const version = "3.137.0";
  const tarball = `buildkite-agent-linux-amd64-${version}.tar.gz`;
  const sumsName = `buildkite-agent-${version}.SHA256SUMS`;
  const work = mkdtempSync(path.join(tmpdir(), "buildpod-fetch-agent-"));
  const agent = "#!/bin/sh\necho 'stand-in buildkite-agent'\n";
  const files = new Map<string, Buffer>();
  let server: Server;
  let base: string;

  const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

  beforeAll(async () => {
    // A release tarball laid out like the real ones: ./buildkite-agent beside sample files.
    const pkg = path.join(work, "pkg");
    mkdirSync(path.join(pkg, "hooks"), { recursive: true });
    writeFileSync(path.join(pkg, "buildkite-agent"), agent, { mode: 0o755 });
    writeFileSync(path.join(pkg, "buildkite-agent.cfg"), "# sample\n");
    const tar = spawnSync("tar", ["-czf", path.join(work, tarball), "-C", pkg, "."]);
    expect(tar.status).toBe(0);
    files.set(tarball, readFileSync(path.join(work, tarball)));

    server = createServer((req, res) => {
      const body = files.get(path.basename(req.url ?? ""));
      if (!req.url?.startsWith(`/v${version}/`) || !body) {
        res.writeHead(404).end("not found\n");
        return;
      }
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the script; asynchronously, since the release server answers from this process. */
  const fetchAgent = (arch: string, out: string) =>
    new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn("sh", [script, version, arch, out], {
        env: { PATH: process.env.PATH, BUILDKITE_AGENT_RELEASES: base },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stderr }));
    });

  const publishSums = (lines: string[]) => {
    files.set(sumsName, Buffer.from(`${lines.join("\n")}\n`));
  };

  it("installs the binary, its version and checksum when the published sum matches", async () => {
    const tgz = files.get(tarball) as Buffer;
    publishSums([
      `${sha256("other")}  buildkite-agent-linux-arm64-${version}.tar.gz`,
      `${sha256(tgz)}  ${tarball}`,
    ]);
    const out = path.join(work, "ok");
    const result = await fetchAgent("amd64", out);

    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(readFileSync(path.join(out, "buildkite-agent"), "utf8")).toBe(agent);
    expect(spawnSync(path.join(out, "buildkite-agent"), { encoding: "utf8" }).stdout).toBe(
      "stand-in buildkite-agent\n",
    );
    expect(readFileSync(path.join(out, "VERSION"), "utf8")).toBe(`${version}\n`);
    expect(readFileSync(path.join(out, "SHA256"), "utf8")).toBe(
      `${sha256(agent)}  buildkite-agent\n`,
    );
  });

  it("refuses a tarball that does not match its published checksum", async () => {
    publishSums([`${sha256("a different tarball")}  ${tarball}`]);
    const out = path.join(work, "tampered");
    const result = await fetchAgent("amd64", out);

    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${tarball} does not match its checksum in ${sumsName}`);
    expect(existsSync(out)).toBe(false);
  });

  it("refuses a sums file without an entry for the tarball", async () => {
    publishSums([`${sha256("x")}  buildkite-agent-linux-arm64-${version}.tar.gz`]);
    const result = await fetchAgent("amd64", path.join(work, "unlisted"));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${sumsName} has no single entry for ${tarball}`);
  });

  it("names the release that could not be downloaded", async () => {
    const result = await fetchAgent("arm64", path.join(work, "missing"));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`download of ${base}/v${version}/buildkite-agent-linux-arm64`);
  });

  it("rejects an architecture buildkite-agent has no release for", async () => {
    const result = await fetchAgent("s390x", path.join(work, "s390x"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("no release for architecture 's390x'");
  });
});
