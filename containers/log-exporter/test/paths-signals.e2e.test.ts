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

  it.each([
    ["without a sinks file", (_dir: string): string[] => []],
    ["with a stdout sink", (dir: string) => ["--sinks", sinksFile(dir, { type: "stdout" })]],
  ])(
    "keeps stdout for the records %s: its own lines and summary go to stderr",
    async (_, sinkArgs) => {
      const ws = workspace();
      writeFileSync(join(ws.logs, "a.log"), "first record\nsecond record\n");
      const args = ["--logs", ws.logs, "--lifecycle-dir", ws.lifecycle, "--state-dir", ws.state];
      const run = startExporter([...args, ...sinkArgs(ws.dir), "--flush-interval", "100ms"]);
      await waitFor(() => run.stdout().includes("second record"), "the records on stdout");
      finishWorkload(ws.lifecycle);
      expect(await run.exited).toBe(0);

      const records = run.logLines();
      expect(records.map((r) => r.message)).toEqual(["first record", "second record"]);
      expect(records.every((r) => r.level === undefined && r.msg === undefined)).toBe(true);
      const own = run
        .stderr()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      expect(own.map((l) => l.msg)).toContain("exporting logs");
      expect(own.find((l) => l.msg === "summary")?.summary).toMatchObject({ delivered: 2 });
    },
  );
});
