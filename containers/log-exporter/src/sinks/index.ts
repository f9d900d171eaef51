// The cluster sinks file (a mounted ConfigMap, `--sinks FILE`): named sinks and the default.
// Credentials are given by file reference only (`passwordFile`, `apiKeyFile`, `sharedKeyFile`,
// `keyFile`), read once at start and never printed.
import { readFileSync } from "node:fs";
import {
  byteSize,
  ConfigError,
  duration,
  loadDocumentFile,
  type Problem,
  type Source,
  z,
} from "@buildpod/config";
import type { RecordMeta } from "../record.ts";
import { fileSink, stdoutSink } from "./file.ts";
import type { Sink, SinkEvents } from "./sink.ts";

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "lowercase letters, digits, - and _");

// A node URL carries no credentials: they would be printed wherever the URL is.
const nodeUrl = z
  .url({ protocol: /^https?$/, error: "an http:// or https:// URL, such as https://host:9200" })
  .refine((url) => !/^[a-z]+:\/\/[^/?#]*@/i.test(url), {
    message:
      "a URL without credentials (user:password@); give them by `username` and `passwordFile`",
  });

const elasticsearch = z.strictObject({
  type: z.literal("elasticsearch"),
  nodes: z.array(nodeUrl).min(1),
  index: z.string().min(1),
  username: z.string().min(1).optional(),
  passwordFile: z.string().min(1).optional(),
  apiKeyFile: z.string().min(1).optional(),
  caFile: z.string().min(1).optional(),
  maxBulkBytes: byteSize.prefault("5MiB"),
  requestTimeout: duration.prefault("30s"),
});

const fluentd = z.strictObject({
  type: z.literal("fluentd"),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(24224),
  tag: z.string().min(1).default("buildkite.job"),
  sharedKeyFile: z.string().min(1).optional(),
  clientHostname: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  passwordFile: z.string().min(1).optional(),
  tls: z.boolean().default(false),
  caFile: z.string().min(1).optional(),
  ackTimeout: duration.prefault("10s"),
});

const stackdriver = z.strictObject({
  type: z.literal("stackdriver"),
  projectId: z.string().min(1),
  logId: z.string().min(1).default("buildkite-jobs"),
  location: z.string().min(1),
  clusterName: z.string().min(1),
  keyFile: z.string().min(1).optional(),
  apiEndpoint: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  insecure: z.boolean().default(false),
  maxRequestBytes: byteSize.prefault("9MB"),
  maxEntryBytes: byteSize.prefault("256KiB"),
});

const file = z.strictObject({ type: z.literal("file"), path: z.string().min(1) });
const stdout = z.strictObject({ type: z.literal("stdout") });

const sinkSpec = z.discriminatedUnion("type", [elasticsearch, fluentd, stackdriver, file, stdout]);

/** The sinks file's schema. */
export const sinksFileSchema = z
  .strictObject({
    default: name.optional(),
    sinks: z.record(name, sinkSpec),
  })
  .refine((f) => f.default === undefined || f.default in f.sinks, {
    message: "`default` must name one of `sinks`",
    path: ["default"],
  });

export type SinkSpec = z.output<typeof sinkSpec>;
export type SinksFile = z.output<typeof sinksFileSchema>;

/** Credentials someone may write inline, and the key that names their file instead. */
const INLINE_SECRETS: Record<string, string> = {
  password: "passwordFile",
  apiKey: "apiKeyFile",
  api_key: "apiKeyFile",
  sharedKey: "sharedKeyFile",
  shared_key: "sharedKeyFile",
  key: "keyFile",
  credentials: "keyFile",
};

/** A credential written inline is told to be a file; a URL's credentials are not repeated. */
function sinkKeyHints(problems: readonly Problem[]): Problem[] {
  return problems.map((problem) => {
    const at = problem.key.split(".");
    // A URL's own credentials are not repeated in the error that refuses them.
    if (problem.received !== undefined && /^[a-z]+:\/\/[^/?#]*@/i.test(problem.received.slice(1))) {
      return { ...problem, received: problem.received.replace(/\/\/[^/?#]*@/, "//***@") };
    }
    if (problem.expected !== "a known key" || at.length !== 3 || at[0] !== "sinks") return problem;
    const instead = INLINE_SECRETS[at[2] as string];
    if (instead === undefined) return problem;
    const hint =
      `credentials are read from files only: mount the secret and give its path as ` +
      `\`${instead}: /path/to/file\``;
    return { ...problem, hint };
  });
}

/** The sink to use: `--sink NAME` or the file's default; stdout without a sinks file. */
export function chooseSink(
  file: SinksFile | undefined,
  wanted: string | undefined,
  source?: Source,
): { name: string; spec: SinkSpec } {
  if (file === undefined) {
    if (wanted !== undefined && wanted !== "stdout") {
      throw new ConfigError([
        {
          key: "sink",
          source,
          expected: "a sink defined in the sinks file",
          received: JSON.stringify(wanted),
          hint: "give --sinks FILE (the cluster sinks file) or leave --sink unset for stdout",
        },
      ]);
    }
    return { name: "stdout", spec: { type: "stdout" } };
  }
  const chosen = wanted ?? file.default;
  if (chosen === undefined || file.sinks[chosen] === undefined) {
    const known = Object.keys(file.sinks).join(", ");
    throw new ConfigError([
      {
        key: "sink",
        source: wanted === undefined ? undefined : source,
        expected: `one of the sinks in the sinks file (${known})`,
        received:
          chosen === undefined
            ? "nothing (and the sinks file has no default)"
            : JSON.stringify(chosen),
        hint: "set --sink NAME (LOG_EXPORTER_SINK) or a `default:` in the sinks file",
      },
    ]);
  }
  return { name: chosen, spec: file.sinks[chosen] as SinkSpec };
}

/** The validated sinks file, with the line of each of its values for later problems. */
export interface LoadedSinks {
  path: string;
  file: SinksFile;
  lineOf(at: readonly PropertyKey[]): number | undefined;
}

/**
 * Loads and validates the sinks file (every problem named with its line). `source` is where
 * its path came from (`--sinks`, `LOG_EXPORTER_SINKS`, a config key): a missing file is
 * reported there.
 */
export function loadSinksFile(path: string, source?: Source): LoadedSinks {
  const origin = { key: "sinks", source, what: "the cluster sinks file" };
  try {
    const { data, file } = loadDocumentFile(path, sinksFileSchema, origin);
    return { path, file: data, lineOf: file.lineOf };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(sinkKeyHints(err.problems), err.notes);
  }
}

/** The keys of a sink that name a file it reads: credentials and CA certificates. */
const FILE_KEYS = ["passwordFile", "apiKeyFile", "sharedKeyFile", "keyFile", "caFile"] as const;

/**
 * Reads, before any work, every file the chosen sink names, so that a secret that is not
 * mounted is a configuration error at start naming the sinks file's line, rather than a failed
 * connection at the first send. The other sinks' files are not checked: a pod mounts only the
 * secrets of the sink it uses.
 */
export function checkSinkFiles(sinks: LoadedSinks, name: string, spec: SinkSpec): void {
  const problems: Problem[] = [];
  for (const key of FILE_KEYS) {
    const path = (spec as Partial<Record<(typeof FILE_KEYS)[number], string>>)[key];
    if (path === undefined) continue;
    const at = ["sinks", name, key];
    const source = { kind: "file" as const, name: sinks.path, line: sinks.lineOf(at) };
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      problems.push({
        key: at.join("."),
        source,
        expected: "a file that exists and is readable",
        received: `${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? err})`,
        hint: "mount the secret at that path, or correct the path in the sinks file",
      });
      continue;
    }
    const wrong = key === "keyFile" ? keyFileProblem(text) : undefined;
    if (wrong !== undefined) {
      problems.push({
        key: at.join("."),
        source,
        expected: "a Google credentials JSON file (a service account key, or workload identity)",
        // What is wrong with it, never what it holds.
        received: `${JSON.stringify(path)}, ${wrong}`,
        hint: "mount the key file the Google Cloud console or gcloud wrote, unchanged",
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Why a `keyFile` cannot be a Google credentials file, or undefined: it must be a JSON object
 * with a `type`, and a service account key must carry its `client_email` and `private_key`.
 * Found at start, the mistake is a configuration error instead of retries until the deadline.
 */
function keyFileProblem(text: string): string | undefined {
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    return "which is not JSON";
  }
  if (!key || typeof key !== "object" || typeof (key as { type?: unknown }).type !== "string") {
    return 'which has no "type" field';
  }
  const k = key as Record<string, unknown>;
  if (k.type !== "service_account") return undefined;
  const missing = ["client_email", "private_key"].filter((f) => typeof k[f] !== "string");
  return missing.length > 0 ? `a service account key without ${missing.join(" and ")}` : undefined;
}

/** Builds the sink; reads credential files. Stackdriver and fluentd load their libraries lazily. */
export async function createSink(
  spec: SinkSpec,
  meta: RecordMeta,
  events: SinkEvents,
): Promise<Sink> {
  switch (spec.type) {
    case "elasticsearch": {
      // Each sink's client library is loaded only when that sink is used: together they are
      // most of the exporter's start-up memory.
      const { ElasticsearchSink } = await import("./elasticsearch.ts");
      return new ElasticsearchSink(
        {
          nodes: spec.nodes,
          index: spec.index,
          username: spec.username,
          password: secret(spec.passwordFile, "passwordFile"),
          apiKey: secret(spec.apiKeyFile, "apiKeyFile"),
          caFile: spec.caFile,
          maxBulkBytes: spec.maxBulkBytes,
          requestTimeoutMs: spec.requestTimeout,
        },
        meta,
        events,
      );
    }
    case "fluentd": {
      const { FluentdSink } = await import("./fluentd.ts");
      return new FluentdSink(
        {
          host: spec.host,
          port: spec.port,
          tag: spec.tag,
          sharedKey: secret(spec.sharedKeyFile, "sharedKeyFile"),
          clientHostname: spec.clientHostname,
          username: spec.username,
          password: secret(spec.passwordFile, "passwordFile"),
          tls: spec.tls,
          caFile: spec.caFile,
          ackTimeoutMs: spec.ackTimeout,
        },
        meta,
        events,
      );
    }
    case "stackdriver": {
      const { StackdriverSink } = await import("./stackdriver.ts");
      return new StackdriverSink(
        { ...spec, maxRequestBytes: spec.maxRequestBytes, maxEntryBytes: spec.maxEntryBytes },
        meta,
        events,
      );
    }
    case "file":
      return fileSink({ path: spec.path }, meta);
    case "stdout":
      return stdoutSink(meta);
  }
}

/** Reads a credential file (trailing newline dropped); undefined when not configured. */
function secret(path: string | undefined, key: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw new ConfigError([
      {
        key,
        expected: "a readable credential file",
        received: `${path} (${(err as NodeJS.ErrnoException).code ?? err})`,
        hint: "mount the secret at that path or fix the sinks file",
      },
    ]);
  }
}
