import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpsServer } from "node:https";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { groupPath, PushClient, Pusher } from "@buildpod/metrics-exporter";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTestCa } from "../../../test/fakes/tls.ts";
import { tempDir } from "./fixtures.ts";
import { eventually, testExporter } from "./helpers.ts";
import { type Running, startPushgateway } from "./tools.ts";

let gateway: Running;
beforeAll(async () => {
  gateway = await startPushgateway();
}, 60_000);
afterAll(async () => {
  await gateway?.stop();
});

interface Group {
  labels: Record<string, string>;
  [family: string]: unknown;
}
async function groups(): Promise<Group[]> {
  const res = await request(`${gateway.url}/api/v1/metrics`);
  return ((await res.body.json()) as { data: Group[] }).data;
}
const findGroup = async (job: string) => (await groups()).find((g) => g.labels.job === job);

describe("groupPath", () => {
  it.each([
    ["plain values stay readable", "ci", [["step", "build-1"]], "/metrics/job/ci/step/build-1"],
    ["a value with / goes base64", "ci", [["path", "a/b"]], "/metrics/job/ci/path@base64/YS9i"],
    ["an empty value is =", "ci", [["step", ""]], "/metrics/job/ci/step@base64/="],
    ["the job too", "team/ci", [], "/metrics/job@base64/dGVhbS9jaQ"],
    ["URL-safe alphabet", "ci", [["l", "??>"]], "/metrics/job/ci/l@base64/Pz8-"],
  ] as const)("%s", (_name, job, grouping, expected) => {
    expect(groupPath(job, grouping)).toBe(expected);
  });

  it("refuses a grouping label that cannot be a label", () => {
    expect(() => groupPath("ci", [["bad-name", "x"]])).toThrow(/not a usable grouping label name/);
    expect(() => groupPath("", [])).toThrow(/job name is empty/);
  });
});

describe("PushClient and Pusher against the real Pushgateway", () => {
  it("pushes a group whose grouping values contain / and are empty", async () => {
    const client = new PushClient({
      url: gateway.url,
      job: "slash-job",
      grouping: [
        ["pipeline", "team/app"],
        ["step", ""],
      ],
      timeoutMs: 10_000,
    });
    try {
      expect(await client.put("# TYPE built gauge\nbuilt 1\n")).toEqual({ ok: true, status: 200 });
      const group = await findGroup("slash-job");
      expect(group?.labels).toEqual({ job: "slash-job", pipeline: "team/app", step: "" });
    } finally {
      await client.close();
    }
  });

  it("treats a 400 as final and hands its reason on", async () => {
    const other = new PushClient({
      url: gateway.url,
      job: "typed-gauge",
      grouping: [],
      timeoutMs: 10_000,
    });
    const ours = new PushClient({
      url: gateway.url,
      job: "typed-counter",
      grouping: [],
      timeoutMs: 10_000,
    });
    const pusher = new Pusher(ours, { debounceMs: 10, retry: { minMs: 10, maxMs: 50 } });
    const rejected: { status?: number; reason: string }[] = [];
    pusher.on("rejected", (r) => rejected.push(r));
    try {
      expect((await other.put("# TYPE shared_name gauge\nshared_name 1\n")).ok).toBe(true);
      pusher.update("# TYPE shared_name counter\nshared_name 2\n");
      const result = await pusher.flush(AbortSignal.timeout(20_000));
      expect(result.delivered).toBe(false);
      expect(result.rejected).toMatch(
        /inconsistent with existing metrics.*is not a (GAUGE|COUNTER)/s,
      );
      expect(rejected[0]?.status).toBe(400);
    } finally {
      await other.close();
      await pusher.close();
    }
  });

  it("times out on a gateway that accepts the connection and never answers, and retries", async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const { port } = silent.address() as { port: number };
    const client = new PushClient({
      url: `http://127.0.0.1:${port}`,
      job: "silent",
      grouping: [],
      timeoutMs: 300,
    });
    const pusher = new Pusher(client, { debounceMs: 10, retry: { minMs: 50, maxMs: 100 } });
    const retries: { reason: string }[] = [];
    pusher.on("retry", (r) => retries.push(r));
    try {
      pusher.update("x 1\n");
      // The loop is retrying (with waits up to maxMs) when the drain starts: flush takes over.
      await new Promise((r) => setTimeout(r, 700));
      const started = Date.now();
      const result = await pusher.flush(AbortSignal.timeout(2500));
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(result).toEqual({ delivered: false, rejected: undefined });
      expect(retries.length).toBeGreaterThanOrEqual(2);
      expect(retries[0]?.reason).toBe("no answer within 300 ms");
      // The attempts the drain cut short are not announced as retries.
      expect(retries.filter((r) => /aborted/i.test(r.reason))).toEqual([]);
    } finally {
      await pusher.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  }, 30_000);
});

describe("TLS with the configured CA, and basic auth", () => {
  it("trusts only the given CA and sends the credentials", async () => {
    const dir = await tempDir("tls");
    const tls = await makeTestCa(dir);
    const ca = await readFile(tls.caFile, "utf8");
    const seen: { method?: string; url?: string; auth?: string; type?: string; body: string }[] =
      [];
    const server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => {
        seen.push({
          method: req.method,
          url: req.url,
          auth: req.headers.authorization,
          type: req.headers["content-type"],
          body,
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
    const target = {
      url,
      job: "tls",
      grouping: [],
      timeoutMs: 5000,
      basicAuth: { username: "ci", password: "pa:ss" },
    };
    const trusted = new PushClient({ ...target, ca });
    const untrusted = new PushClient(target);
    try {
      expect(await trusted.put("x 1\n")).toEqual({ ok: true, status: 200 });
      expect(seen[0]).toEqual({
        method: "PUT",
        url: "/metrics/job/tls",
        auth: `Basic ${Buffer.from("ci:pa:ss").toString("base64")}`,
        type: "text/plain; version=0.0.4; charset=utf-8",
        body: "x 1\n",
      });
      const refused = await untrusted.put("x 1\n");
      expect(refused.ok).toBe(false);
      expect(refused.ok ? "" : refused.reason).toMatch(/certificate/i);
    } finally {
      await trusted.close();
      await untrusted.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the exporter's push output", () => {
  it("pushes on change, strips timestamps with a warning, deletes the group at the end when told", async () => {
    const root = await tempDir("push");
    const { exporter, lines, metrics } = await testExporter(root, {
      push: {
        target: {
          url: gateway.url,
          job: "exporter-e2e",
          grouping: [["step", "a/b"]],
          timeoutMs: 10_000,
        },
        debounceMs: 50,
        retention: "delete",
        deleteAfterMs: 100,
      },
    });
    try {
      await exporter.start();
      await writeFile(
        join(root, "prometheus-push", "job.prom"),
        "# TYPE steps gauge\nsteps 3 1700000000000\n",
      );
      const group = await eventually(async () => {
        const g = await findGroup("exporter-e2e");
        return g?.steps === undefined ? undefined : g;
      });
      expect(group.labels).toEqual({ job: "exporter-e2e", step: "a/b" });
      expect(JSON.stringify(group.steps)).toContain('"value":"3"');
      expect(lines.some((l) => l.msg.startsWith("stripped sample timestamps"))).toBe(true);

      const outcome = await exporter.drain(AbortSignal.timeout(20_000));
      expect(outcome.exitCode).toBe(0);
      expect(outcome.summary.pushgateway).toMatchObject({
        delivered: true,
        deleted: true,
        rejected: 0,
      });
      const own = await metrics.metrics();
      expect(own).toMatch(/metrics_exporter_pushes_total\{result="ok"\} [2-9]/);
      expect(own).toContain('metrics_exporter_series{dir="prometheus-push"} 1');
      await eventually(async () =>
        (await findGroup("exporter-e2e")) === undefined ? true : undefined,
      );
    } finally {
      await exporter.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("exits REJECTED when the gateway refuses the final push, with the reason logged", async () => {
    const root = await tempDir("push400");
    const seed = new PushClient({
      url: gateway.url,
      job: "seed-400",
      grouping: [],
      timeoutMs: 10_000,
    });
    await seed.put("# TYPE clash gauge\nclash 1\n");
    await seed.close();
    const { exporter, lines } = await testExporter(root, {
      push: {
        target: { url: gateway.url, job: "exporter-400", grouping: [], timeoutMs: 10_000 },
        debounceMs: 50,
        retention: "keep",
        deleteAfterMs: 0,
      },
    });
    try {
      await writeFile(join(root, "prometheus-push", "job.prom"), "# TYPE clash counter\nclash 2\n");
      await exporter.start();
      const outcome = await exporter.drain(AbortSignal.timeout(20_000));
      expect(outcome.exitCode).toBe(4);
      const refusal = lines.find((l) => l.msg.startsWith("the pushgateway refused the push"));
      expect(refusal?.msg).toMatch(/inconsistent with existing metrics.*is not a (GAUGE|COUNTER)/s);
      expect(refusal?.status).toBe(400);
    } finally {
      await exporter.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
