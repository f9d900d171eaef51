/**
 * `agent-injector inject`, the init container: verify the job token, copy buildkite-agent (and
 * any extra binaries) into the shared bin volume, and write the job env files for the workload
 * and the sidecars. See README.md for the pod picture.
 */
import { basename, join } from "node:path";
import { type ConfigOf, describeSource } from "@buildpod/config";
import { defineCommand, ExitCode, type RunContext } from "@buildpod/runtime";
import { Counter } from "prom-client";
import { AgentApi } from "./agent-api.ts";
import { DEFAULT_ENDPOINT, endpointFrom, injectOptions } from "./config.ts";
import { InjectorError } from "./errors.ts";
import type { Owner } from "./files.ts";
import {
  type BinarySpec,
  type InstallResult,
  installBinary,
  readImageChecksum,
  readImageVersion,
  recordVersion,
} from "./install-binary.ts";
import { TOKEN_VARIABLE, writeJobEnv } from "./job-env.ts";
import { selectJobEnv } from "./shell-env.ts";
import { checkToken } from "./token.ts";
import { verifyToken } from "./verify.ts";

type InjectConfig = ConfigOf<typeof injectOptions>;
type Ctx = RunContext<InjectConfig>;

export const inject = defineCommand({
  description: "init container: copy buildkite-agent into the pod and write the job env files",
  kind: "init",
  options: injectOptions,
  async run(ctx) {
    try {
      return await injectAll(ctx);
    } catch (err) {
      // A stop signal aborts the token check's wait; say so rather than report a bug.
      if (!ctx.signal.aborted || err instanceof InjectorError) throw err;
      throw new InjectorError(
        "interrupted",
        "could not finish inject: stopped by a signal; no file is left half-written (each is " +
          "renamed into place whole), so running it again is safe",
        { cause: err },
      );
    }
  },
});

async function injectAll(ctx: Ctx) {
  const { config } = ctx;
  const needsToken = config.verifyToken || config.writeEnv;
  const token = needsToken ? checkToken(config.token, tokenSource(ctx)) : undefined;
  const summary: Record<string, unknown> = {};

  if (config.verifyToken && token !== undefined) {
    Object.assign(summary, await verify(ctx, token));
  }
  const installed = await installAll(ctx, summary);
  summary.binaries = installed.length;
  summary.copied = installed.filter((r) => r.copied).length;

  if (config.writeEnv && token !== undefined) {
    Object.assign(summary, await writeEnvFiles(ctx, token));
  }
  return { exitCode: ExitCode.OK, summary };
}

async function writeEnvFiles(ctx: Ctx, token: string) {
  const { config } = ctx;
  const envDir = config.envDir ?? join(ctx.common.lifecycleDir, "env");
  const vars = selectJobEnv(ctx.env, config.envInclude, [...config.envExclude, TOKEN_VARIABLE]);
  const written = await writeJobEnv({
    dir: envDir,
    vars,
    token,
    groupReadable: config.groupReadable,
    owner: parseOwner(config.owner),
  });
  for (const name of written.skipped) {
    ctx.logger.warn(
      { name, path: written.shellFile },
      `skipped ${name} in the shell env file: not a shell variable name (kept in buildkite.json)`,
    );
  }
  ctx.logger.info({ path: envDir, variables: written.variables }, "wrote the job env files");
  return { variables: written.variables, env_dir: envDir };
}

/**
 * Where the token came from, for the "missing" and "malformed" messages: the flag, env var or
 * config file line that gave it, or every way there is when none did.
 */
function tokenSource(ctx: Ctx): string {
  const source = ctx.sources.token;
  if (source === undefined || source.kind === "default") {
    return "--token-file, AGENT_INJECTOR_TOKEN_FILE or BUILDKITE_AGENT_ACCESS_TOKEN";
  }
  return describeSource(source);
}

async function verify(ctx: Ctx, token: string) {
  const { config, logger } = ctx;
  const jobId = config.jobId;
  if (jobId === undefined) {
    throw new InjectorError(
      "job-id-missing",
      "could not verify the job token: BUILDKITE_JOB_ID is unset; set it in the pod spec, or " +
        "turn verification off with --no-verify-token",
    );
  }
  const attempts = new Counter({
    name: "agent_injector_token_verify_attempts_total",
    help: "Requests made to verify the job token, by result",
    labelNames: ["result"],
    registers: [ctx.metrics],
  });
  const api = new AgentApi({
    endpoint: config.endpoint ?? DEFAULT_ENDPOINT,
    endpointFrom: endpointFrom(ctx.sources.endpoint),
    token,
    requestTimeoutMs: config.requestTimeout,
  });
  const started = Date.now();
  try {
    const verified = await verifyToken({
      api,
      jobId,
      retryForMs: config.verifyTimeout,
      signal: ctx.signal,
      onRetry: (err, attempt, delayMs) => {
        attempts.inc({ result: "retried" });
        logger.warn({ err, attempt, delay_ms: delayMs }, "agent API not answering; retrying");
      },
    });
    attempts.inc({ result: "accepted" });
    logger.info(
      { job_id: jobId, state: verified.state, duration_ms: Date.now() - started },
      "job token accepted by the agent API",
    );
    return { job_state: verified.state, verify_attempts: verified.attempts };
  } catch (err) {
    attempts.inc({ result: "failed" });
    throw err;
  } finally {
    await api.close();
  }
}

async function installAll(ctx: Ctx, summary: Record<string, unknown>): Promise<InstallResult[]> {
  const { config, logger } = ctx;
  const installs = new Counter({
    name: "agent_injector_binaries_total",
    help: "Binaries placed into the bin volume, by result (copied or unchanged)",
    labelNames: ["result"],
    registers: [ctx.metrics],
  });
  const options = { dest: config.dest, mode: 0o755, owner: parseOwner(config.owner) };
  const specs: BinarySpec[] = config.extraBinaries.map(parseExtraBinary);
  if (config.installAgent) {
    const source = config.agentBinary;
    specs.unshift({
      source,
      name: "buildkite-agent",
      expectedSha256: await readImageChecksum(source),
    });
  }

  const results: InstallResult[] = [];
  for (const spec of specs) {
    const result = await installBinary(spec, options);
    installs.inc({ result: result.copied ? "copied" : "unchanged" });
    logger.info(
      { path: result.path, sha256: result.sha256, bytes: result.bytes, copied: result.copied },
      result.copied ? `copied ${result.name}` : `${result.name} already in place`,
    );
    results.push(result);
  }
  if (config.installAgent) {
    const version = await readImageVersion(config.agentBinary);
    if (version === undefined) {
      logger.warn({ path: config.agentBinary }, "no VERSION file beside the agent binary");
    } else {
      const path = await recordVersion("buildkite-agent", version, options);
      logger.info({ version, path }, `buildkite-agent ${version}`);
    }
    summary.agent_version = version ?? "unknown";
  }
  return results;
}

/** `SRC` or `SRC:NAME` (the schema has checked the form). */
function parseExtraBinary(text: string): BinarySpec {
  const colon = text.indexOf(":");
  if (colon === -1) return { source: text, name: basename(text) };
  return { source: text.slice(0, colon), name: text.slice(colon + 1) };
}

/** `UID` or `UID:GID` (the schema has checked the form); the gid defaults to the uid. */
export function parseOwner(text: string | undefined): Owner | undefined {
  if (text === undefined) return undefined;
  const [uid, gid] = text.split(":").map(Number) as [number, number | undefined];
  return { uid, gid: gid ?? uid };
}
