/**
 * `agent-injector run`, the sidecar: optionally supervises buildkite-agent, watches the job's
 * state for cancellation (writing the `cancel` marker), and writes the `workload-finished`
 * marker when the job is over, so that the other sidecars start their drain.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ConfigOf } from "@buildpod/config";
import {
  addSecrets,
  defineCommand,
  ExitCode,
  type Finished,
  type Logger,
  type RunContext,
  readMarker,
  writeMarker,
} from "@buildpod/runtime";
import { AgentApi } from "./agent-api.ts";
import { waitForCancel } from "./cancel-watch.ts";
import { DEFAULT_ENDPOINT, endpointFrom, JOB_ID, JOB_ID_EXPECTED, runOptions } from "./config.ts";
import { InjectorError } from "./errors.ts";
import { writeFileAtomic } from "./files.ts";
import { readJobEnv, TOKEN_VARIABLE } from "./job-env.ts";
import { type RunMetrics, runMetrics } from "./run-metrics.ts";
import { type ChildExit, type Supervisor, supervise } from "./supervise.ts";
import { checkToken, readTokenFile } from "./token.ts";

type RunConfig = ConfigOf<typeof runOptions>;
type Ctx = RunContext<RunConfig>;

/** What `run` learned about the job, from its options and the files `inject` wrote. */
interface Job {
  env: Record<string, string>;
  token?: string;
  jobId?: string;
  endpoint: string;
  /** Where the endpoint was set, for the API's hints. */
  endpointFrom: string;
}

export const run = defineCommand({
  description: "sidecar: supervise buildkite-agent, watch for cancellation, mark the job's end",
  kind: "sidecar",
  options: runOptions,
  positionals: "[-- AGENT_COMMAND...]",
  async run(ctx) {
    const job = await loadJob(ctx);
    const logger = scrubbingLogger(ctx, job);
    return new Session(ctx, job, logger).run();
  },
});

async function loadJob(ctx: Ctx): Promise<Job> {
  const { config } = ctx;
  const envDir = config.envDir ?? join(ctx.common.lifecycleDir, "env");
  const env = await readJobEnv(envDir);
  let token: string | undefined;
  if (config.token !== undefined) token = checkToken(config.token, "the token option");
  else {
    const file = join(envDir, "token");
    const raw = (await readTokenFile(file)) ?? env[TOKEN_VARIABLE];
    if (raw !== undefined) token = checkToken(raw, `file ${file}`);
  }
  const endpoint = config.endpoint ?? env.BUILDKITE_AGENT_ENDPOINT ?? DEFAULT_ENDPOINT;
  const inEnvDir = `BUILDKITE_AGENT_ENDPOINT in the job env ${envDir}`;
  const from =
    config.endpoint === undefined && env.BUILDKITE_AGENT_ENDPOINT !== undefined
      ? inEnvDir
      : endpointFrom(ctx.sources.endpoint);
  const jobId = config.jobId ?? env.BUILDKITE_JOB_ID;
  // The option is checked with the config; the one `inject` wrote is checked here.
  if (jobId !== undefined && !JOB_ID.test(jobId)) {
    throw new InjectorError(
      "job-id-malformed",
      `could not watch the job: BUILDKITE_JOB_ID in the job env ${envDir} is ` +
        `${JSON.stringify(jobId)}, expected ${JOB_ID_EXPECTED}; set the job's real ID`,
    );
  }
  return { env, token, jobId, endpoint, endpointFrom: from };
}

/**
 * The runtime's logger scrubs the secrets it loaded; a token read from the env dir and the
 * values named by --scrub-env are added to it, so every line from here on is scrubbed of them,
 * the runtime's own summary line included.
 */
function scrubbingLogger(ctx: Ctx, job: Job): Logger {
  addSecrets(ctx.logger, secretsOf(ctx, job));
  return ctx.logger;
}

function secretsOf(ctx: Ctx, job: Job): string[] {
  const fromEnv = ctx.config.scrubEnv.map((name) => ctx.env[name] ?? job.env[name]);
  return [job.token, ...fromEnv].filter((s): s is string => s !== undefined && s !== "");
}

class Session {
  readonly #ctx: Ctx;
  readonly #job: Job;
  readonly #logger: Logger;
  readonly #metrics: RunMetrics;
  readonly #stopPolling = new AbortController();
  readonly #doneFile: string;
  #agent: Supervisor | undefined;
  #cancelled: string | undefined;

  constructor(ctx: Ctx, job: Job, logger: Logger) {
    this.#ctx = ctx;
    this.#job = job;
    this.#logger = logger;
    this.#metrics = runMetrics(ctx.metrics);
    // The runtime adds the lifecycle options to a sidecar's config; doneFile is one of them.
    const doneFile = (ctx.config as { doneFile?: string }).doneFile;
    this.#doneFile = doneFile ?? join(ctx.common.lifecycleDir, "workload-finished");
  }

  async run() {
    const polling = this.#startPolling();
    const args =
      this.#ctx.positionals.length > 0 ? this.#ctx.positionals : this.#ctx.config.agentArgs;
    try {
      const outcome =
        args.length > 0 ? await this.#superviseAgent(args) : await this.#awaitWorkload();
      return { ...outcome, summary: { ...outcome.summary, cancelled: this.#cancelled ?? false } };
    } finally {
      this.#stopPolling.abort();
      await polling;
    }
  }

  /** No agent here: wait for the lifecycle, and pass the exit code on when only we know it. */
  async #awaitWorkload() {
    const finished = await this.#ctx.lifecycle.finished;
    const marker = await this.#markFinished(finished.exitCode, finished);
    return { exitCode: ExitCode.OK, summary: { finished: finished.reason, marker } };
  }

  async #superviseAgent(args: readonly string[]) {
    const { config } = this.#ctx;
    const agent = await supervise({
      command: config.agentCommand,
      args,
      env: { ...this.#job.env, ...this.#ctx.env },
      secrets: secretsOf(this.#ctx, this.#job),
      stdout: process.stdout,
      stderr: process.stderr,
    });
    this.#agent = agent;
    this.#logger.info({ path: config.agentCommand, pid: agent.pid }, "started the agent");
    // The first poll runs while the agent starts; a job cancelled by then is passed on here.
    if (this.#cancelled !== undefined) agent.kill(config.cancelSignal);
    const unforward = agent.forwardSignals(undefined, (signal) => {
      this.#metrics.signalsForwarded.inc({ signal });
      this.#logger.info({ signal }, `forwarded ${signal} to the agent`);
    });
    try {
      const first = await Promise.race([agent.exited, this.#ctx.lifecycle.finished]);
      const finished = "reason" in first ? first : undefined;
      const exit = finished ? await this.#stopAgent(agent, finished) : (first as ChildExit);
      this.#metrics.agentExitCode.set(exit.exitCode);
      this.#logger.info({ exit_code: exit.exitCode, signal: exit.signal }, "the agent exited");
      // The workload's own code, when the lifecycle knew it first, beats the agent's.
      const marker = await this.#markFinished(finished?.exitCode ?? exit.exitCode, finished);
      const summary = {
        agent_exit_code: exit.exitCode,
        finished: finished?.reason ?? "agent",
        marker,
      };
      // The agent's code is passed on as the container's: not one of ours (its 3 is not
      // INCOMPLETE), so the status file says whose it is.
      const exitReason = exit.exitCode === 0 ? "OK" : "AGENT_EXIT_CODE";
      return { exitCode: exit.exitCode, summary, exitReason };
    } finally {
      unforward();
    }
  }

  /**
   * The workload ended while the agent still runs. A stop signal has already been forwarded;
   * otherwise ask the agent to stop. At the drain deadline (or a second signal) it is killed.
   */
  async #stopAgent(agent: Supervisor, finished: Finished): Promise<ChildExit> {
    if (finished.reason !== "signal" && agent.kill("SIGTERM")) {
      this.#logger.info({ reason: finished.reason }, "workload finished; stopping the agent");
    }
    const drain = this.#ctx.lifecycle.drainSignal();
    const kill = () => {
      if (agent.kill("SIGKILL")) this.#logger.warn("drain deadline reached; killed the agent");
    };
    if (drain.aborted) kill();
    drain.addEventListener("abort", kill, { once: true });
    try {
      return await agent.exited;
    } finally {
      drain.removeEventListener("abort", kill);
    }
  }

  /** Writes the workload-finished marker unless it exists; returns what happened. */
  async #markFinished(exitCode: number | undefined, finished?: Finished) {
    if (await readMarker(this.#doneFile)) return "present";
    if (exitCode === undefined) {
      this.#logger.info(
        { reason: finished?.reason },
        "workload exit code unknown; not writing the workload-finished marker",
      );
      return "none";
    }
    await mkdir(dirname(this.#doneFile), { recursive: true });
    await writeMarker(this.#doneFile, exitCode);
    this.#logger.info(
      { path: this.#doneFile, exit_code: exitCode },
      "wrote the workload-finished marker",
    );
    return "written";
  }

  #startPolling(): Promise<void> {
    const { token, jobId, endpoint } = this.#job;
    const interval = this.#ctx.config.pollInterval;
    if (interval === 0 || token === undefined || jobId === undefined) {
      const why =
        interval === 0
          ? "--poll-interval is 0"
          : `no ${token === undefined ? "job token" : "job id"}`;
      this.#logger.warn(`not watching the job for cancellation: ${why}`);
      return Promise.resolve();
    }
    const api = new AgentApi({
      endpoint,
      endpointFrom: this.#job.endpointFrom,
      token,
      requestTimeoutMs: this.#ctx.config.requestTimeout,
    });
    const watching = waitForCancel({
      api,
      jobId,
      intervalMs: interval,
      signal: this.#stopPolling.signal,
      onState: () => this.#metrics.polls.inc({ result: "ok" }),
      onError: (err, failures) => {
        this.#metrics.polls.inc({ result: "error" });
        // The first failure and then every tenth, so a long outage does not flood the log.
        if (failures === 1 || failures % 10 === 0) {
          this.#logger.warn({ err, attempt: failures }, "could not poll the job state; will retry");
        }
      },
    });
    return watching
      .then((state) => (state ? this.#onCancel(state) : undefined))
      .catch((err) => this.#logger.error({ err }, "could not handle the job's cancellation"))
      .finally(() => api.close());
  }

  async #onCancel(state: string): Promise<void> {
    this.#cancelled = state;
    this.#metrics.cancelled.set(1);
    const file = join(this.#ctx.common.lifecycleDir, "cancel");
    this.#logger.warn({ state, path: file }, `the job is ${state}; writing the cancel marker`);
    await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, `${state}\n`, { mode: 0o644 });
    const signal = this.#ctx.config.cancelSignal;
    if (this.#agent?.kill(signal)) this.#logger.info({ signal }, `sent ${signal} to the agent`);
  }
}
