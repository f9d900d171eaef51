import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  byteSize,
  ConfigError,
  duration,
  loadConfig,
  loadDocument,
  option,
  optionsMarkdown,
  printable,
  renderOptions,
  z,
} from "@buildpod/config";
import { describe, expect, it } from "vitest";

const options = {
  repo: option({ schema: z.string(), description: "repository URL", aliases: ["BUILDKITE_REPO"] }),
  depth: option({ schema: z.number().int().positive().default(50), description: "history depth" }),
  verbose: option({ schema: z.boolean().default(false), description: "more logs" }),
  drainTimeout: option({ schema: duration.default(25_000), description: "drain deadline" }),
  query: option({
    schema: z.array(z.string()).default([]),
    description: "globs",
    repeatable: true,
  }),
  labels: option({ schema: z.record(z.string(), z.string()).default({}), description: "labels" }),
  token: option({
    schema: z.string().optional(),
    description: "API token",
    secret: true,
    aliases: ["API_TOKEN"],
  }),
};

function tempFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "config-test-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map(
      (p) =>
        `${p.key}|${p.source?.kind}:${p.source?.name}:${p.source?.line ?? ""}|${p.expected}|${p.received ?? ""}|${p.hint ?? ""}`,
    );
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("takes flags over env over file over defaults", () => {
    const file = tempFile("c.yaml", "repo: from-file\ndepth: 7\nverbose: true\n");
    const loaded = loadConfig(options, {
      argv: ["--repo", "from-flag", "extra"],
      env: { T_REPO: "from-env", T_DEPTH: "9" },
      envPrefix: "T",
      configFile: file,
      positionals: true,
    });
    expect(loaded.config.repo).toBe("from-flag");
    expect(loaded.config.depth).toBe(9);
    expect(loaded.config.verbose).toBe(true);
    expect(loaded.config.drainTimeout).toBe(25_000);
    expect(loaded.sources.repo).toEqual({ kind: "flag", name: "--repo" });
    expect(loaded.sources.depth).toEqual({ kind: "env", name: "T_DEPTH" });
    expect(loaded.sources.verbose).toMatchObject({ kind: "file", line: 3 });
    expect(loaded.positionals).toEqual(["extra"]);
  });

  it("reads aliases, durations, repeated flags, lists, maps and negated booleans", () => {
    const loaded = loadConfig(options, {
      argv: ["--query", "a/*", "--query=b/**", "--no-verbose", "--drain-timeout", "1m30s"],
      env: {
        BUILDKITE_REPO: "git@host:org/repo.git",
        T_LABELS: "team=ci,tier=2",
        T_VERBOSE: "true",
      },
      envPrefix: "T",
    });
    expect(loaded.config).toMatchObject({
      repo: "git@host:org/repo.git",
      query: ["a/*", "b/**"],
      verbose: false,
      drainTimeout: 90_000,
      labels: { team: "ci", tier: "2" },
    });
    expect(loaded.sources.repo).toEqual({ kind: "env", name: "BUILDKITE_REPO" });
  });

  it("reports a wrong type and an unknown key at once, naming where each came from", () => {
    const file = tempFile("job.yaml", "repo: r\n# comment\ndepht: 3\ndepth: many\n");
    const problems = problemsOf(() =>
      loadConfig(options, {
        argv: ["--verbos"],
        env: { T_DRAIN_TIMEOUT: "soon" },
        envPrefix: "T",
        configFile: file,
      }),
    );
    expect(problems).toHaveLength(4);
    expect(problems).toContainEqual(
      expect.stringMatching(/^depht\|file:.*job\.yaml:3\|a known key\|\|did you mean "depth"\?$/),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/^depth\|file:.*job\.yaml:4\|a value of type number\|"many"/),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(/^drainTimeout\|env:T_DRAIN_TIMEOUT:\|a duration.*\|"soon"/),
    );
    expect(problems).toContainEqual(
      expect.stringMatching(
        /^--verbos\|flag:--verbos:\|a known flag\|\|did you mean "--verbose"\?/,
      ),
    );
  });

  it("says how to set a required option that is missing", () => {
    const problems = problemsOf(() => loadConfig(options, { argv: [], env: {}, envPrefix: "T" }));
    expect(problems).toEqual([
      expect.stringContaining(
        "repo|undefined:undefined:|a value (required): set --repo or T_REPO or BUILDKITE_REPO",
      ),
    ]);
  });

  it("takes the password of a URL in any option for a secret, as written and decoded", () => {
    const loaded = loadConfig(options, {
      argv: ["--repo", "https://ci:p%40ss-word@git.example.com/app.git"],
      env: {},
      envPrefix: "T",
    });
    expect(loaded.secrets).toEqual(["p%40ss-word", "p@ss-word"]);
    expect(JSON.stringify(printable(options, loaded))).not.toContain("ss-word");
  });

  it("reads secrets only from files or aliases and never shows them", () => {
    const secretFile = tempFile("token", "s3cr3t-value\n");
    const loaded = loadConfig(options, {
      argv: ["--token-file", secretFile],
      env: { T_REPO: "r" },
      envPrefix: "T",
    });
    expect(loaded.config.token).toBe("s3cr3t-value");
    expect(loaded.secrets).toEqual(["s3cr3t-value"]);
    expect(JSON.stringify(printable(options, loaded))).not.toContain("s3cr3t");

    const viaAlias = loadConfig(options, {
      argv: [],
      env: { T_REPO: "r", API_TOKEN: "alias-secret" },
      envPrefix: "T",
    });
    expect(viaAlias.config.token).toBe("alias-secret");

    const file = tempFile("c.yaml", "repo: r\ntoken: inline-secret\n");
    const problems = problemsOf(() =>
      loadConfig(options, { argv: [], env: {}, envPrefix: "T", configFile: file }),
    );
    expect(problems).toEqual([
      expect.stringContaining('a file reference, not the secret itself: use "tokenFile:'),
    ]);
    expect(problems.join()).not.toContain("inline-secret");
  });

  it("prints no password a URL carries", () => {
    const loaded = loadConfig(options, {
      argv: ["--repo", "https://ci:hunter22@git.example.com/org/repo.git"],
      env: {},
      envPrefix: "T",
    });
    expect(printable(options, loaded).repo).toBe(
      "https://ci:[redacted]@git.example.com/org/repo.git",
    );
  });

  it("names an unreadable or empty secret file", () => {
    const empty = tempFile("empty", "");
    const problems = problemsOf(() =>
      loadConfig(options, { argv: ["--repo", "r"], env: { T_TOKEN_FILE: empty }, envPrefix: "T" }),
    );
    expect(problems).toEqual([
      expect.stringContaining("token|env:T_TOKEN_FILE:|a non-empty secret in"),
    ]);
    const missing = problemsOf(() =>
      loadConfig(options, {
        argv: ["--repo", "r", "--token-file", "/nonexistent/t"],
        env: {},
        envPrefix: "T",
      }),
    );
    expect(missing).toEqual([
      expect.stringContaining("a readable secret file at /nonexistent/t|ENOENT"),
    ]);
  });

  it("does not echo a secret given where its file's path belongs", () => {
    const problems = problemsOf(() =>
      loadConfig(options, {
        argv: ["--repo", "r"],
        env: { T_TOKEN_FILE: "bkua_0123456789secret" },
        envPrefix: "T",
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining("the value given is not shown: it is no path"),
    ]);
    expect(problems.join()).not.toContain("bkua_0123456789secret");
  });

  it("warns about prefixed env vars that match no option", () => {
    const loaded = loadConfig(options, {
      argv: [],
      env: {
        T_REPO: "r",
        T_DEPHT: "1",
        // What Kubernetes sets for a Service named `t`: not a typo, no warning.
        T_SERVICE_HOST: "10.0.0.1",
        T_SERVICE_PORT: "80",
        T_SERVICE_PORT_HTTP: "80",
        T_PORT: "tcp://10.0.0.1:80",
        T_PORT_80_TCP: "tcp://10.0.0.1:80",
        T_PORT_80_TCP_PROTO: "tcp",
        T_PORT_80_TCP_PORT: "80",
        T_PORT_80_TCP_ADDR: "10.0.0.1",
      },
      envPrefix: "T",
    });
    expect(loaded.warnings).toEqual([
      expect.stringContaining('T_DEPHT matches no option; did you mean "T_DEPTH"?'),
    ]);
  });
});

describe("loadDocument", () => {
  const sinks = z.strictObject({
    default: z.string(),
    sinks: z.record(
      z.string(),
      z.strictObject({ type: z.enum(["file", "elasticsearch"]), url: z.string().optional() }),
    ),
  });

  it("validates a YAML document and names file and line of each problem", () => {
    const path = tempFile(
      "sinks.yaml",
      "default: es\nsinks:\n  es:\n    type: elastic\n    urll: http://x\n",
    );
    const problems = problemsOf(() => loadDocument(path, sinks));
    expect(problems).toEqual([
      expect.stringMatching(
        /^sinks\.es\.type\|file:.*sinks\.yaml:4\|one of "file", "elasticsearch"\|"elastic"/,
      ),
      expect.stringMatching(
        /^sinks\.es\.urll\|file:.*sinks\.yaml:5\|a known key\|"urll"\|did you mean "url"\?/,
      ),
    ]);
  });

  it("suggests a key of the union member that the document's `type` names", () => {
    const tagged = z.strictObject({
      sinks: z.record(
        z.string(),
        z.discriminatedUnion("type", [
          z.strictObject({ type: z.literal("file"), path: z.string() }),
          z.strictObject({ type: z.literal("elasticsearch"), index: z.string() }),
        ]),
      ),
    });
    const path = tempFile(
      "tagged.yaml",
      "sinks:\n  es:\n    type: elasticsearch\n    indx: logs\n",
    );
    const problems = problemsOf(() => loadDocument(path, tagged));
    expect(problems).toContainEqual(
      expect.stringMatching(
        /^sinks\.es\.indx\|file:.*tagged\.yaml:4\|a known key\|"indx"\|did you mean "index"\?/,
      ),
    );
  });

  it("says in words what a format or bound wanted, and keeps a schema's own message", () => {
    const schema = z.strictObject({
      nodes: z.array(z.url()).min(1),
      store: z.string().startsWith("dir:"),
      label: z.string().regex(/^[^=]+=/, "KEY=VALUE"),
      name: z.string().min(1),
      concurrency: z.number().int().min(1).max(16),
      ratio: z.number().positive(),
      sink: z
        .discriminatedUnion("type", [
          z.strictObject({ type: z.literal("file") }),
          z.strictObject({ type: z.literal("stdout") }),
        ])
        .optional(),
      port: z.union([z.number(), z.string().startsWith(":")]).optional(),
    });
    const path = tempFile(
      "doc.yaml",
      'nodes: [foo]\nstore: s3\nlabel: x\nname: ""\nconcurrency: 40\nratio: 0\nsink: { type: s3 }\nport: true\n',
    );
    expect(problemsOf(() => loadDocument(path, schema)).map((p) => p.split("|")[2])).toEqual([
      "a URL with a scheme and a host, such as https://host:port",
      'text starting with "dir:"',
      "KEY=VALUE",
      "a non-empty value",
      "a number at most 16",
      "a number more than 0",
      'one of "file", "stdout"',
      "a value of type number, or a value of type string",
    ]);
    const empty = tempFile(
      "empty.yaml",
      "nodes: []\nstore: dir:x\nlabel: a=b\nname: n\nconcurrency: 1.5\nratio: 1\n",
    );
    expect(problemsOf(() => loadDocument(empty, schema)).map((p) => p.split("|")[2])).toEqual([
      "at least 1 item",
      "a whole number",
    ]);
  });

  it("reports YAML syntax errors with their line", () => {
    const path = tempFile("bad.yaml", "default: es\nsinks: [\n");
    const problems = problemsOf(() => loadDocument(path, sinks));
    expect(problems[0]).toMatch(/^config\|file:.*bad\.yaml:\d+\|valid YAML or JSON/);
  });
});

describe("values", () => {
  it("parses durations and sizes", () => {
    expect(duration.parse("500ms")).toBe(500);
    expect(duration.parse("2m")).toBe(120_000);
    // A bare number (a YAML `drainTimeout: 25`) has no unit; only 0 means the same in all.
    expect(duration.safeParse(42).success).toBe(false);
    expect(duration.parse(0)).toBe(0);
    expect(duration.safeParse("2 weeks").success).toBe(false);
    expect(duration.safeParse("25").success).toBe(false);
    expect(duration.parse("0")).toBe(0);
    expect(byteSize.parse("5MiB")).toBe(5 * 1024 * 1024);
    expect(byteSize.parse("100KB")).toBe(100_000);
    expect(byteSize.safeParse("lots").success).toBe(false);
  });

  it("renders a Markdown options table with env vars and defaults", () => {
    const table = optionsMarkdown(options, "T");
    const rows = table.split("\n").map((line) => line.split("|").map((cell) => cell.trim()));
    expect(rows[0]).toEqual(["", "flag", "env", "config key", "default", "description", ""]);
    expect(rows).toContainEqual([
      "",
      "`--repo VALUE`",
      "`T_REPO`, `BUILDKITE_REPO`",
      "`repo`",
      "required",
      "repository URL",
      "",
    ]);
    expect(rows).toContainEqual([
      "",
      "`--token-file FILE`",
      "`T_TOKEN_FILE`, `API_TOKEN` (the secret itself)",
      "`tokenFile`",
      "",
      "API token",
      "",
    ]);
    expect(rows).toContainEqual([
      "",
      "`--depth N`",
      "`T_DEPTH`",
      "`depth`",
      "`50`",
      "history depth",
      "",
    ]);
    // Columns are padded, as Markdown formatters leave them, so a formatter changes nothing.
    expect(new Set(table.split("\n").map((line) => line.length)).size).toBe(1);
  });

  it("says in --help that a secret's alias env var holds the secret, not a file path", () => {
    const help = renderOptions(options, "T");
    expect(help).toContain("[env T_TOKEN_FILE, API_TOKEN (the secret itself)]");
    // Other aliases are plain names: they hold the option's value as any env var does.
    expect(help).toContain("[env T_REPO, BUILDKITE_REPO; required]");
  });
});
