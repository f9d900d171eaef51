/**
 * The options of `metrics-exporter`, and the cluster-level Pushgateway file they point to.
 */
import { duration, listenAddress, type Options, option, z } from "@buildpod/config";

export const options = {
  root: option({
    schema: z.string().min(1).default("/metrics"),
    description: "the metrics volume: prometheus/, prometheus-push/ and datadog/ below it",
    env: "METRICS_ROOT",
    metavar: "DIR",
  }),
  listen: option({
    schema: listenAddress.optional(),
    description: "serve prometheus/*.prom merged at http://ADDR/metrics; unset serves nothing",
    metavar: "ADDR",
  }),
  pushConfig: option({
    schema: z.string().min(1).optional(),
    description: "Pushgateway file (YAML: url, job, grouping, auth, CA, retention); unset: no push",
    metavar: "FILE",
  }),
  pushDebounce: option({
    schema: duration.prefault("2s"),
    description: "wait this long after a change in prometheus-push/ before pushing",
    metavar: "DURATION",
  }),
  datadog: option({
    schema: z.enum(["off", "dogstatsd", "api"]).default("off"),
    description: "send datadog/*.prom through DogStatsD (UDP) or the HTTP API v2, or not at all",
    metavar: "MODE",
  }),
  datadogAgentHost: option({
    schema: z.string().min(1).default("localhost"),
    description: "host of the Datadog Agent's DogStatsD (in Kubernetes: the node's IP)",
    env: "DD_AGENT_HOST",
    metavar: "HOST",
  }),
  datadogDogstatsdPort: option({
    schema: z.coerce.number().int().min(1).max(65535).default(8125),
    description: "UDP port of the Agent's DogStatsD",
    env: "DD_DOGSTATSD_PORT",
    metavar: "PORT",
  }),
  datadogDogstatsdUrl: option({
    schema: z.string().optional(),
    description: "udp://HOST:PORT, overriding host and port (unix:// sockets are not supported)",
    env: "DD_DOGSTATSD_URL",
    metavar: "URL",
  }),
  datadogApiKey: option({
    schema: z.string().min(1).optional(),
    description: "Datadog API key for --datadog api (DD_API_KEY or a file)",
    aliases: ["DD_API_KEY"],
    secret: true,
  }),
  datadogSite: option({
    schema: z.string().min(1).default("datadoghq.com"),
    description: "Datadog site: datadoghq.com, datadoghq.eu, us3.datadoghq.com ...",
    env: "DD_SITE",
    metavar: "SITE",
  }),
  datadogApiUrl: option({
    schema: z.url({ protocol: /^https?$/ }).optional(),
    description: "series endpoint URL; default https://api.<site>/api/v2/series",
    metavar: "URL",
  }),
  datadogNamespace: option({
    schema: z.string().default(""),
    description: "prefix for every Datadog metric name, joined with a dot",
    metavar: "PREFIX",
  }),
  datadogTags: option({
    schema: z.array(z.string().regex(/^[^:,|]+:.*$/, "key:value")).default([]),
    description: "extra tags key:value on every Datadog point",
    repeatable: true,
    metavar: "TAG",
  }),
  datadogContextTags: option({
    schema: z
      .array(z.string().regex(/^[a-zA-Z_][\w.-]*=[A-Za-z_]\w*$/, "tag=ENV_VAR"))
      .default(["pipeline=BUILDKITE_PIPELINE_SLUG", "step=BUILDKITE_STEP_KEY"]),
    description: "tags from the job env, tag=ENV_VAR (unset vars are left out)",
    repeatable: true,
    metavar: "TAG=ENV",
  }),
  datadogInterval: option({
    schema: duration.prefault("15s"),
    description: "send gauges again this often while nothing changes; 0 only on changes",
    metavar: "DURATION",
  }),
  datadogTimeout: option({
    schema: duration.prefault("10s"),
    description: "timeout of one HTTP API request",
    metavar: "DURATION",
  }),
  incompleteGrace: option({
    schema: duration.prefault("5s"),
    description: "how long a file may lack its final newline before that counts as an error",
    metavar: "DURATION",
  }),
  finalScrapeWait: option({
    schema: duration.prefault("10s"),
    description:
      "after the workload finished, keep serving until one scrape saw the last files (at most this long, within the drain); 0 stops at once",
    metavar: "DURATION",
  }),
  rescanInterval: option({
    schema: duration.prefault("10s"),
    description: "full rescan of the root, in case file events were missed",
    metavar: "DURATION",
  }),
} satisfies Options;

/** A grouping label's value: an env var, the first set of several, or a fixed text. */
const groupingValue = z.union([
  z.string().regex(/^[A-Za-z_]\w*$/, "an env var name"),
  z.array(z.string().regex(/^[A-Za-z_]\w*$/, "an env var name")).min(1),
  z.strictObject({ value: z.string() }),
]);

/** The cluster-level Pushgateway file (a mounted ConfigMap), read with `loadDocument`. */
export const pushFileSchema = z.strictObject({
  pushgateway: z.strictObject({
    url: z.url({ protocol: /^https?$/ }),
    job: z.string().min(1).default("buildkite"),
    grouping: z
      .record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, "a label name"), groupingValue)
      .default({
        pipeline: "BUILDKITE_PIPELINE_SLUG",
        step: ["BUILDKITE_STEP_KEY", "BUILDKITE_LABEL"],
      }),
    basicAuth: z
      .strictObject({ username: z.string().min(1), passwordFile: z.string().min(1) })
      .optional(),
    caFile: z.string().min(1).optional(),
    timeout: duration.prefault("10s"),
    /**
     * keep: the group stays (the next run of the same step replaces it); delete: the group is
     * deleted `deleteAfter` after the final push, within the drain.
     */
    retention: z.enum(["keep", "delete"]).default("keep"),
    deleteAfter: duration.prefault("0s"),
  }),
});

export type PushFile = z.output<typeof pushFileSchema>;
