import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, type Source } from "@buildpod/config";
import type { RunContext } from "@buildpod/runtime";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exporterOptions } from "../src/run.ts";
import { tempDir } from "./fixtures.ts";
import { memoryLogger } from "./helpers.ts";

type Ctx = Parameters<typeof exporterOptions>[0];
type Config = Ctx["config"];

const DEFAULTS: Config = {
  root: "/metrics",
  listen: undefined,
  pushConfig: undefined,
  pushDebounce: 2000,
  datadog: "off",
  datadogAgentHost: "localhost",
  datadogDogstatsdPort: 8125,
  datadogDogstatsdUrl: undefined,
  datadogApiKey: undefined,
  datadogSite: "datadoghq.com",
  datadogApiUrl: undefined,
  datadogNamespace: "",
  datadogTags: [],
  datadogContextTags: ["pipeline=BUILDKITE_PIPELINE_SLUG", "step=BUILDKITE_STEP_KEY"],
  datadogInterval: 15_000,
  datadogTimeout: 10_000,
  incompleteGrace: 5000,
  rescanInterval: 10_000,
  finalScrapeWait: 10_000,
};

let lifecycleDir: string;
beforeAll(async () => {
  lifecycleDir = await tempDir("run");
});
afterAll(() => rm(lifecycleDir, { recursive: true, force: true }));

function ctx(
  config: Partial<Config>,
  env: Record<string, string> = {},
  sources: Record<string, Source> = {},
): Ctx {
  return {
    config: { ...DEFAULTS, ...config },
    sources,
    env,
    logger: memoryLogger().logger,
    metrics: new Registry(),
    common: { lifecycleDir },
  } as unknown as RunContext<Config>;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError)
      return err.problems.map((p) => `${p.key}: ${p.expected}${p.hint ? `; ${p.hint}` : ""}`);
    throw err;
  }
  return [];
}

describe("exporterOptions", () => {
  it("needs at least one output", () => {
    expect(problemsOf(() => exporterOptions(ctx({})))).toEqual([
      "listen: at least one output: --listen ADDR, --push-config FILE or --datadog MODE; with none of them the sidecar would have nothing to do",
    ]);
  });

  it("reads the listen address, with :PORT meaning every interface", () => {
    expect(exporterOptions(ctx({ listen: ":9100" })).serve).toEqual({
      host: "0.0.0.0",
      port: 9100,
    });
    expect(exporterOptions(ctx({ listen: "[::1]:9100" })).serve).toEqual({
      host: "::1",
      port: 9100,
    });
  });

  it("takes grouping values from the env over the job env file, and reads the password file", async () => {
    await mkdir(join(lifecycleDir, "env"), { recursive: true });
    await writeFile(
      join(lifecycleDir, "env", "buildkite.json"),
      JSON.stringify({
        BUILDKITE_PIPELINE_SLUG: "from-file",
        BUILDKITE_LABEL: "Build / test",
        BUILDKITE_STEP_KEY: "",
      }),
    );
    await writeFile(join(lifecycleDir, "password"), "hunter2-secret\n");
    const file = join(lifecycleDir, "push.yaml");
    await writeFile(
      file,
      `pushgateway:\n  url: http://127.0.0.1:9091\n  basicAuth:\n    username: ci\n    passwordFile: ${join(lifecycleDir, "password")}\n`,
    );
    const push = exporterOptions(
      ctx({ pushConfig: file }, { BUILDKITE_PIPELINE_SLUG: "from-env" }),
    ).push;
    expect(push?.target.grouping).toEqual([
      ["pipeline", "from-env"],
      ["step", "Build / test"],
    ]);
    expect(push?.target.basicAuth).toEqual({ username: "ci", password: "hunter2-secret" });
    expect(push?.retention).toBe("keep");
    await rm(join(lifecycleDir, "env"), { recursive: true });
  });

  it("names the push file and line of a bad key, with a suggestion", async () => {
    const file = join(lifecycleDir, "bad.yaml");
    await writeFile(file, "pushgateway:\n  url: http://127.0.0.1:9091\n  retension: delete\n");
    const problems = problemsOf(() => exporterOptions(ctx({ pushConfig: file })));
    expect(problems.join("\n")).toContain("retension");
  });

  it("refuses credentials written into the Pushgateway URL", async () => {
    const file = join(lifecycleDir, "creds.yaml");
    await writeFile(file, "pushgateway:\n  url: https://ci:hunter2@pushgateway:9091\n");
    let message = "";
    try {
      exporterOptions(ctx({ pushConfig: file }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("basicAuth with passwordFile");
    expect(message).toContain(`pushgateway.url (${file} line 2)`);
    expect(message).not.toContain("hunter2");
  });

  it("names the flag a bad DogStatsD URL came from", () => {
    const err = (() => {
      try {
        exporterOptions(
          ctx(
            { datadog: "dogstatsd", datadogDogstatsdUrl: "tcp://agent:8125" },
            {},
            {
              datadogDogstatsdUrl: { kind: "flag", name: "--datadog-dogstatsd-url" },
            },
          ),
        );
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.message).toContain(
      '(flag --datadog-dogstatsd-url): expected udp://HOST:PORT, got "tcp://agent:8125"',
    );
  });

  it("lists every problem at once: a missing password file, a unix:// DogStatsD URL", async () => {
    const file = join(lifecycleDir, "nopass.yaml");
    await writeFile(
      file,
      "pushgateway:\n  url: http://127.0.0.1:9091\n  basicAuth: { username: ci, passwordFile: /nonexistent/pw }\n",
    );
    const problems = problemsOf(() =>
      exporterOptions(
        ctx({
          pushConfig: file,
          datadog: "dogstatsd",
          datadogDogstatsdUrl: "unix:///var/run/datadog/dsd.socket",
        }),
      ),
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain("pushgateway.basicAuth.passwordFile: a readable file");
    expect(problems[1]).toContain("DogStatsD over a Unix socket is not supported");
  });

  it("reads DD_DOGSTATSD_URL and the job context tags for Datadog", () => {
    const opts = exporterOptions(
      ctx(
        {
          datadog: "dogstatsd",
          datadogDogstatsdUrl: "udp://10.0.0.7:8126",
          datadogTags: ["team:ci"],
        },
        { BUILDKITE_PIPELINE_SLUG: "web|app,x" },
      ),
    );
    expect(opts.datadog?.mapping.tags).toEqual(["team:ci", "pipeline:web_app_x"]);
    expect(opts.datadog?.sink.kind).toBe("dogstatsd");
    void opts.datadog?.sink.close();
  });
});
