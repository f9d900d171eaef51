import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { finishWorkload, sinksFile, startExporter, waitFor, workspace } from "./helpers.ts";

describe("log-exporter paths and stop signals", () => {
  it("gives records the absolute path of files named by a relative --logs and --path", async () => {
    const ws = workspace();
    const out = join(ws.dir, "out.ndjson");
    const sinks = sinksFile(ws.dir, { type: "file", path: out });
    writeFileSync(join(ws.logs, "a.log"), "from logs\n");
    mkdirSync(join(ws.dir, "extra"));
    writeFileSync(join(ws.dir, "extra", "b.txt"), "from path\n");
    const args = ["--logs", "logs", "--path", "extra/*.txt", "--sinks", sinks];
    const run = startExporter(
      [...args, "--lifecycle-dir", ws.lifecycle, "--state-dir", ws.state],
      {},
      ws.dir,
    );
    await waitFor(() => run.stdout().includes("exporting logs"), "the exporter to start");
    finishWorkload(ws.lifecycle);
    expect(await run.exited).toBe(0);

    const records = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const pathOf = (message: string) => records.find((r) => r.message === message)?.log?.file?.path;
    expect(pathOf("from logs")).toBe(join(ws.logs, "a.log"));
    expect(pathOf("from path")).toBe(join(ws.dir, "extra", "b.txt"));
  });

  it("says a second SIGTERM stopped it at once, not that the drain deadline came", async () => {
    // A sink that never answers, so the drain (60 s) is still running at the second signal.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const ws = workspace();
    const sinks = sinksFile(ws.dir, { type: "fluentd", host: "127.0.0.1", port });
    writeFileSync(join(ws.logs, "a.log"), "one\ntwo\n");
    const args = ["--logs", ws.logs, "--sinks", sinks, "--lifecycle-dir", ws.lifecycle];
    const run = startExporter([...args, "--state-dir", ws.state, "--drain-timeout", "60s"]);
    await waitFor(() => run.stdout().includes("could not reach the sink"), "the first warning");
    run.child.kill("SIGTERM");
    await waitFor(() => run.stdout().includes("workload finished; draining"), "the drain");
    run.child.kill("SIGTERM");

    expect(await run.exited).toBe(130);
    expect(run.stdout()).toContain(
      "received a second stop signal (SIGTERM); stopping at once without draining",
    );
    expect(run.stdout()).not.toContain("drain deadline");
    // The summary still names the sink and what was not delivered.
    expect(run.summary()).toMatchObject({ sink: "main", delivered: 0, interrupted: true });
  });
});
