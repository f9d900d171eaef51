/**
 * agent-injector's options. Env vars carry the AGENT_INJECTOR_ prefix, except the job's own
 * Buildkite variables, which are read under their Buildkite names so that a pod spec can hand
 * over the job env unchanged. Precedence: flags > env > config file > defaults.
 */
import { describeSource, duration, type Options, option, type Source, z } from "@buildpod/config";

/** The agent API base URL when neither the option nor the job env names one. */
// The Buildkite agent's own default since 2026-04-09 (before: https://agent.buildkite.com/v3).
export const DEFAULT_ENDPOINT = "https://agent-edge.buildkite.com/v3";

/** A Buildkite job ID is a UUID: 32 hex digits in groups of 8-4-4-4-12. */
export const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a job ID should look like, for the errors that refuse one. */
export const JOB_ID_EXPECTED =
  "a Buildkite job ID, a UUID such as 0190a7e2-5c3d-7f1e-9a2b-3c4d5e6f7a8b";

/** Where the endpoint was set, as the API's hints name it. */
export function endpointFrom(source: Source | undefined): string {
  if (source === undefined || source.kind === "default") {
    return `the default ${DEFAULT_ENDPOINT}; set --endpoint or BUILDKITE_AGENT_ENDPOINT`;
  }
  return describeSource(source);
}

/** Where the image puts the agent (images/Dockerfile, stage agent-injector), with VERSION and SHA256. */
export const IMAGE_AGENT_BINARY = "/opt/buildkite-agent/buildkite-agent";

/** Options both commands use to reach the agent API as the job. */
const jobOptions = {
  token: option({
    schema: z.string().optional(),
    description: "the job's agent API token (BUILDKITE_AGENT_ACCESS_TOKEN); a file reference",
    secret: true,
    aliases: ["BUILDKITE_AGENT_ACCESS_TOKEN"],
  }),
  jobId: option({
    schema: z.string().regex(JOB_ID, JOB_ID_EXPECTED).optional(),
    description: "the Buildkite job's UUID",
    env: "BUILDKITE_JOB_ID",
    metavar: "UUID",
  }),
  endpoint: option({
    schema: z.url({ protocol: /^https?$/ }).optional(),
    description: `agent API base URL; default ${DEFAULT_ENDPOINT}`,
    env: "BUILDKITE_AGENT_ENDPOINT",
    metavar: "URL",
  }),
  requestTimeout: option({
    schema: duration.prefault("30s"),
    description: "upper bound for one agent API request, so a stalled endpoint cannot hang us",
    metavar: "DURATION",
  }),
  envDir: option({
    schema: z.string().min(1).optional(),
    description: "where the job env files live; default <lifecycle dir>/env",
    metavar: "DIR",
  }),
} satisfies Options;

export const injectOptions = {
  ...jobOptions,
  dest: option({
    schema: z.string().min(1).default("/buildkite/bin"),
    description: "shared volume directory the agent (and extra binaries) are copied into",
    metavar: "DIR",
  }),
  agentBinary: option({
    schema: z
      .string()
      .min(1, "a path to the buildkite-agent binary; without one, pass --no-install-agent")
      .default(IMAGE_AGENT_BINARY),
    description: "the buildkite-agent binary in this image (a VERSION file beside it is recorded)",
    metavar: "FILE",
  }),
  installAgent: option({
    schema: z.boolean().default(true),
    description: "copy the agent binary into --dest (--no-install-agent: env files only)",
  }),
  extraBinaries: option({
    schema: z.array(z.string().regex(/^[^:]+(:[^/:]+)?$/, "SRC or SRC:NAME")).default([]),
    description: "further executables to copy into --dest, as SRC or SRC:NAME",
    flag: "extra-binary",
    repeatable: true,
    metavar: "SRC[:NAME]",
  }),
  owner: option({
    schema: z
      .string()
      .regex(/^\d+(:\d+)?$/, "UID or UID:GID, numeric")
      .optional(),
    description: "uid[:gid] to own the written files (the workload's user); needs root",
    metavar: "UID[:GID]",
  }),
  writeEnv: option({
    schema: z.boolean().default(true),
    description: "write buildkite.env, buildkite.json and token into the env dir",
  }),
  envInclude: option({
    schema: z.array(z.string().min(1)).default(["BUILDKITE", "BUILDKITE_*", "CI"]),
    description: "env vars written for the job: names, or prefixes ending in *",
    repeatable: true,
    metavar: "PATTERN",
  }),
  envExclude: option({
    // The registration token is the agent's, not the job's: the agent drops it from job env too.
    schema: z
      .array(z.string().min(1))
      .default(["BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_TOKEN_*"]),
    description: "env vars never written, even when included: names, or prefixes ending in *",
    repeatable: true,
    metavar: "PATTERN",
  }),
  groupReadable: option({
    schema: z.boolean().default(false),
    description: "make the env files 0640 (dir 0750) for sidecars that share only the fsGroup",
  }),
  verifyToken: option({
    schema: z.boolean().default(true),
    description: "check the token with GET jobs/{id} before the workload starts",
  }),
  verifyTimeout: option({
    schema: duration.prefault("2m"),
    description: "how long to retry network errors, 429 and 5xx while verifying the token",
    metavar: "DURATION",
  }),
} satisfies Options;

export const runOptions = {
  ...jobOptions,
  agentCommand: option({
    schema: z.string().min(1).default("/buildkite/bin/buildkite-agent"),
    description: "the program supervised when agent arguments are given",
    metavar: "FILE",
  }),
  agentArgs: option({
    schema: z.array(z.string()).default([]),
    description: "arguments of the supervised agent (or give them after --); none: no agent",
    flag: "agent-arg",
    repeatable: true,
    metavar: "ARG",
  }),
  pollInterval: option({
    schema: duration.prefault("10s"),
    description: "how often the job's state is polled for cancellation; 0 disables polling",
    metavar: "DURATION",
  }),
  cancelSignal: option({
    schema: z.enum(["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGKILL"]).default("SIGTERM"),
    description: "signal sent to the supervised agent when the job is cancelled",
    metavar: "SIGNAL",
  }),
  scrubEnv: option({
    schema: z.array(z.string().min(1)).default(["BUILDKITE_AGENT_TOKEN"]),
    description: "env vars whose values are scrubbed from the agent's output (the token always is)",
    repeatable: true,
    metavar: "NAME",
  }),
} satisfies Options;
