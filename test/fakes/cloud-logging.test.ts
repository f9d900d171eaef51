// The fake Cloud Logging server, called with a plain @grpc/grpc-js client from the same protos.
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  type Metadata,
  type ServiceClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeCloudLogging, startFakeCloudLogging } from "./cloud-logging.ts";

const require = createRequire(import.meta.url);
/** The folder of an installed package (its `exports` hide package.json). */
const root = (name: string) => {
  const entry = require.resolve(name);
  const marker = `/node_modules/${name}`;
  return entry.slice(0, entry.lastIndexOf(`${marker}/`) + marker.length);
};

let fake: FakeCloudLogging | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

function client(port: number) {
  const def = loadSync("google/logging/v2/logging.proto", {
    includeDirs: [
      join(root("@google-cloud/logging-api"), "build/protos"),
      join(root("google-gax"), "build/protos"),
    ],
  });
  const v2 = ((loadPackageDefinition(def).google as GrpcObject).logging as GrpcObject)
    .v2 as GrpcObject;
  const Client = v2.LoggingServiceV2 as ServiceClientConstructor;
  return new Client(`127.0.0.1:${port}`, credentials.createInsecure());
}

function write(
  c: ReturnType<typeof client>,
  request: object,
): Promise<{ code: number; metadata?: Metadata }> {
  return new Promise((resolve) =>
    c.writeLogEntries(request, (err: ServiceError | null) =>
      resolve(err ? { code: err.code, metadata: err.metadata } : { code: 0 }),
    ),
  );
}

describe("fake cloud logging", () => {
  it("writes the valid entries of a partial-success request and reports the others by index", async () => {
    fake = await startFakeCloudLogging({
      entryVerdict: (e) => (e.textPayload === "bad" ? { code: 3, message: "bad" } : undefined),
    });
    const c = client(fake.port);
    const result = await write(c, {
      logName: "projects/p/logs/l",
      resource: { type: "global", labels: {} },
      partialSuccess: true,
      entries: [{ textPayload: "ok" }, { textPayload: "bad" }, { textPayload: "ok 2" }],
    });
    expect(result.code).toBe(3);
    expect(result.metadata?.get("grpc-status-details-bin")).toHaveLength(1);
    expect(fake.entries.map((e) => e.textPayload)).toEqual(["ok", "ok 2"]);
    expect(fake.entries[0]?.logName).toBe("projects/p/logs/l");

    const all = await write(c, {
      logName: "projects/p/logs/l",
      entries: [{ textPayload: "x" }, { textPayload: "bad" }],
    });
    expect(all.code).toBe(3);
    expect(fake.entries).toHaveLength(2);
    c.close();
  });
});
