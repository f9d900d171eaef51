// A fake Cloud Logging API: a @grpc/grpc-js server for
// google.logging.v2.LoggingServiceV2/WriteLogEntries, built from the protos that the npm package
// @google-cloud/logging-api ships (google/api and google/rpc ones come with google-gax).
//
// Behaviour follows the proto comments in logging.proto: with `partial_success` the valid
// entries are written and the call fails with the status of a failed entry, carrying a
// WriteLogEntriesPartialErrors (keyed by entry index) in the `grpc-status-details-bin` trailer
// as a google.rpc.Status detail; without it, one invalid entry fails the whole request and
// nothing is written. Requests over 10 MB and entries over 256 KiB are refused like the quotas
// page says.
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  type GrpcObject,
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceClientConstructor,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const LOGGING_PROTOS = join(packageRoot("@google-cloud/logging-api"), "build/protos");
const COMMON_PROTOS = join(packageRoot("google-gax"), "build/protos");

/** The folder of an installed package (its `exports` hide package.json, so cut the path). */
function packageRoot(name: string): string {
  const entry = require.resolve(name);
  const marker = `/node_modules/${name}/`;
  return entry.slice(0, entry.lastIndexOf(marker) + marker.length - 1);
}

/** Documented limits (cloud.google.com/logging/quotas). */
export const MAX_REQUEST_BYTES = 10 * 1000 * 1000;
export const MAX_ENTRY_BYTES = 256 * 1024;

/** A log entry as decoded by proto-loader (camelCase fields, longs as strings). */
export interface FakeLogEntry {
  logName: string;
  resource?: { type: string; labels: Record<string, string> };
  labels: Record<string, string>;
  insertId: string;
  jsonPayload?: unknown;
  textPayload?: string;
  timestamp?: { seconds: string; nanos: number };
  severity?: string;
  [key: string]: unknown;
}

/** A per-entry verdict: undefined writes it, otherwise the gRPC status code and message. */
export type EntryVerdict = { code: number; message: string } | undefined;

export interface FakeCloudLoggingOptions {
  /** Fail the whole call with this status (e.g. UNAVAILABLE), before looking at entries. */
  callStatus?: (call: { n: number; entries: number }) => EntryVerdict;
  /** Decide each entry. */
  entryVerdict?: (entry: FakeLogEntry, index: number) => EntryVerdict;
}

interface WriteRequest {
  logName: string;
  resource?: FakeLogEntry["resource"];
  labels: Record<string, string>;
  entries: FakeLogEntry[];
  partialSuccess: boolean;
  dryRun: boolean;
}

/** The fake server. Create with `startFakeCloudLogging`. */
export class FakeCloudLogging {
  readonly options: FakeCloudLoggingOptions;
  /** Entries written, with the request's defaults (log name, resource, labels) applied. */
  readonly entries: FakeLogEntry[] = [];
  /** Calls received: how many entries each carried and the status answered. */
  readonly calls: { entries: number; code: number; bytes: number }[] = [];
  port = 0;
  readonly #server = new Server({ "grpc.max_receive_message_length": 32 * 1024 * 1024 });
  readonly #statusType: protobuf.Type;
  readonly #partialType: protobuf.Type;

  constructor(options: FakeCloudLoggingOptions = {}) {
    this.options = options;
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target.startsWith("google/logging/")
        ? join(LOGGING_PROTOS, target)
        : join(COMMON_PROTOS, target);
    root.loadSync("google/logging/v2/logging.proto");
    this.#statusType = root.lookupType("google.rpc.Status");
    this.#partialType = root.lookupType("google.logging.v2.WriteLogEntriesPartialErrors");
  }

  async start(): Promise<void> {
    const definition = loadSync("google/logging/v2/logging.proto", {
      includeDirs: [LOGGING_PROTOS, COMMON_PROTOS],
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const grpcObject = loadPackageDefinition(definition) as GrpcObject;
    const v2 = ((grpcObject.google as GrpcObject).logging as GrpcObject).v2 as GrpcObject;
    const service = (v2.LoggingServiceV2 as ServiceClientConstructor).service;
    this.#server.addService(service, {
      writeLogEntries: (call: ServerUnaryCall<WriteRequest, object>, done: sendUnaryData<object>) =>
        this.#write(call, done),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  }

  /** `127.0.0.1:<port>` for the client's apiEndpoint/port. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    this.#server.forceShutdown();
  }

  #write(call: ServerUnaryCall<WriteRequest, object>, done: sendUnaryData<object>): void {
    const req = call.request;
    const bytes = approximateSize(req);
    const answer = (code: number, details?: string, metadata?: Metadata) => {
      this.calls.push({ entries: req.entries.length, code, bytes });
      if (code === status.OK) done(null, {});
      else done({ code, details, metadata }, null);
    };

    const forced = this.options.callStatus?.({
      n: this.calls.length + 1,
      entries: req.entries.length,
    });
    if (forced) {
      answer(forced.code, forced.message);
      return;
    }
    if (bytes > MAX_REQUEST_BYTES) {
      answer(
        status.INVALID_ARGUMENT,
        `Request payload size exceeds the limit: ${MAX_REQUEST_BYTES} bytes.`,
      );
      return;
    }

    const errors = new Map<number, { code: number; message: string }>();
    req.entries.forEach((raw, i) => {
      const entry = withDefaults(raw, req);
      const verdict = entrySizeVerdict(entry) ?? this.options.entryVerdict?.(entry, i);
      if (verdict) errors.set(i, verdict);
    });

    if (errors.size > 0 && !req.partialSuccess) {
      const first = [...errors.values()][0] as { code: number; message: string };
      answer(first.code, first.message, this.#details(errors));
      return;
    }
    if (!req.dryRun) {
      req.entries.forEach((raw, i) => {
        if (!errors.has(i)) this.entries.push(withDefaults(raw, req));
      });
    }
    if (errors.size === 0) {
      answer(status.OK);
      return;
    }
    const first = [...errors.values()][0] as { code: number; message: string };
    answer(first.code, first.message, this.#details(errors));
  }

  /** The trailer with a google.rpc.Status whose detail is WriteLogEntriesPartialErrors. */
  #details(errors: Map<number, { code: number; message: string }>): Metadata {
    const logEntryErrors: Record<number, object> = {};
    for (const [i, e] of errors) logEntryErrors[i] = { code: e.code, message: e.message };
    const partial = this.#partialType
      .encode(this.#partialType.fromObject({ logEntryErrors }))
      .finish();
    const first = [...errors.values()][0] as { code: number; message: string };
    const rpcStatus = this.#statusType
      .encode(
        this.#statusType.fromObject({
          code: first.code,
          message: first.message,
          details: [
            {
              type_url: "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors",
              value: partial,
            },
          ],
        }),
      )
      .finish();
    const metadata = new Metadata();
    metadata.set("grpc-status-details-bin", Buffer.from(rpcStatus));
    return metadata;
  }
}

function withDefaults(entry: FakeLogEntry, req: WriteRequest): FakeLogEntry {
  return {
    ...entry,
    logName: entry.logName || req.logName,
    resource: entry.resource?.type ? entry.resource : req.resource,
    labels: { ...req.labels, ...entry.labels },
  };
}

/** Entries over 256 KiB are refused (the quota is on the internal size; JSON is close). */
function entrySizeVerdict(entry: FakeLogEntry): EntryVerdict {
  const size = approximateSize(entry);
  if (size <= MAX_ENTRY_BYTES) return undefined;
  return {
    code: status.INVALID_ARGUMENT,
    message: `Log entry with size ${size} exceeds maximum size of ${MAX_ENTRY_BYTES}`,
  };
}

function approximateSize(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? "");
}

/** Starts the fake on a free loopback port. Close it with `close()`. */
export async function startFakeCloudLogging(
  options: FakeCloudLoggingOptions = {},
): Promise<FakeCloudLogging> {
  const fake = new FakeCloudLogging(options);
  await fake.start();
  return fake;
}
