import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { baseArgs, sinksFile, startExporter, workspace } from "./helpers.ts";

// A mistake in where the sinks come from is a configuration error at start (exit 2), named
// where the user wrote it: the --sinks flag or env var for the file, the sinks file's line for
// a credential file it refers to.
describe("sinks configuration errors", () => {
  it("names the sinks file, key, line and path of a credential file that does not exist", async () => {
    const ws = workspace();
    const sinks = join(ws.dir, "sinks.yaml");
    const missing = join(ws.dir, "secrets", "fluentd-password");
    writeFileSync(
      sinks,
      [
        "default: fd",
        "sinks:",
        "  fd:",
        "    type: fluentd",
        "    host: 127.0.0.1",
        "    username: u",
        `    passwordFile: ${missing}`,
        "  es:",
        "    type: elasticsearch",
        "    nodes: ['http://127.0.0.1:9']",
        "    index: logs",
        "    apiKeyFile: /not/checked/because/not/chosen",
      ].join("\n"),
    );
    const run = startExporter(baseArgs(ws, sinks));

    expect(await run.exited).toBe(2);
    const expected =
      `sinks.fd.passwordFile (${sinks} line 7): expected a file that exists and is readable, ` +
      `got "${missing}" (ENOENT); mount the secret at that path, or correct the path in the ` +
      "sinks file";
    expect(run.stderr()).toContain(expected);
    expect(run.stderr()).not.toContain("/not/checked");
    expect(run.summary().error).toContain(expected);
  });

  it("refuses a Cloud Logging key file that is no credentials file, without printing it", async () => {
    const ws = workspace();
    const key = join(ws.dir, "key.json");
    writeFileSync(key, '{"type":"service_account","project_id":"p","private_key":"-----BEGIN');
    const sinks = sinksFile(ws.dir, {
      type: "stackdriver",
      projectId: "p",
      location: "europe-west1",
      clusterName: "ci",
      keyFile: key,
    });
    const run = startExporter(baseArgs(ws, sinks));

    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(`sinks.main.keyFile (${sinks}`);
    expect(run.stderr()).toContain(`got "${key}", which is not JSON`);
    expect(run.stderr()).not.toContain("BEGIN");

    writeFileSync(key, '{"type":"service_account","project_id":"p"}');
    const again = startExporter(baseArgs(ws, sinks));
    expect(await again.exited).toBe(2);
    expect(again.stderr()).toContain("a service account key without client_email and private_key");
  });

  it("shows in --print-config the sink it takes when --sink is left out", async () => {
    const ws = workspace();
    const stdout = startExporter(["--print-config"]);
    expect(await stdout.exited).toBe(0);
    expect(JSON.parse(stdout.stdout())).toMatchObject({ sink: "stdout", sinkType: "stdout" });

    const sinks = sinksFile(ws.dir, { type: "file", path: join(ws.dir, "out.ndjson") });
    const fromFile = startExporter(["--print-config", "--sinks", sinks]);
    expect(await fromFile.exited).toBe(0);
    expect(JSON.parse(fromFile.stdout())).toMatchObject({ sink: "main", sinkType: "file" });
  });

  it("names the --sinks flag or LOG_EXPORTER_SINKS and the path of a missing sinks file", async () => {
    const ws = workspace();
    const byFlag = startExporter(baseArgs(ws, "nosuch.yaml"));
    expect(await byFlag.exited).toBe(2);
    expect(byFlag.stderr()).toContain(
      'sinks (flag --sinks): expected an existing, readable file (the cluster sinks file), got "nosuch.yaml" (ENOENT)',
    );

    const args = baseArgs(ws, "x").filter((word) => word !== "--sinks" && word !== "x");
    const byEnv = startExporter(args, { LOG_EXPORTER_SINKS: "/etc/nosuch/sinks.yaml" });
    expect(await byEnv.exited).toBe(2);
    expect(byEnv.stderr()).toContain(
      'sinks (env LOG_EXPORTER_SINKS): expected an existing, readable file (the cluster sinks file), got "/etc/nosuch/sinks.yaml" (ENOENT)',
    );
  });
});
