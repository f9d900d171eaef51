/**
 * The simulated wide-area link of the repo-mirror benchmark: two network namespaces of the
 * benchmark's own ("origin" and "client") joined by a veth pair with link-local addresses that
 * exist nowhere else, so no packet can leave the machine. Bandwidth is shaped in the kernel
 * (`tbf`, both directions); latency comes from `netem` when the kernel has it, else from a
 * userspace relay in front of git daemon (see repo-mirror-delay.ts). Without permission for
 * namespaces, everything falls back to plain loopback and says so.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface WanLink {
  /** How the link was built, for the report. */
  description: string;
  simulated: boolean;
  /** The URL prefix origin's repositories are served under (`git://host:port`). */
  base: string;
  /** The command prefix that runs a program on the client side of the link. */
  client: string[];
  close(): void;
}

export interface WanOptions {
  /** Directory git daemon serves (its --base-path). */
  serve: string;
  rateMbit: number;
  /** Round-trip time added to the link. */
  rttMs: number;
  log: (s: string) => void;
}

const ORIGIN_IP = "169.254.77.1";
const CLIENT_IP = "169.254.77.2";

function sh(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(args[0] as string, args.slice(1), { encoding: "utf8" });
  return { ok: r.status === 0, err: (r.stderr ?? "").trim() };
}

function must(args: string[]): void {
  const r = sh(args);
  if (!r.ok) throw new Error(`${args.join(" ")}: ${r.err}`);
}

async function waitForPort(prefix: string[], host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = sh([...prefix, "git", "ls-remote", `git://${host}:${port}/does-not-exist`]);
    // Any answer from git daemon (even "not found") means it listens.
    if (!/Connection refused|unable to connect/i.test(r.err)) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

function daemon(prefix: string[], serve: string, host: string, port: number): ChildProcess {
  return spawn(
    prefix[0] ?? "git",
    [
      ...prefix.slice(1),
      ...(prefix.length ? ["git"] : []),
      "daemon",
      "--reuseaddr",
      "--export-all",
      `--listen=${host}`,
      `--port=${port}`,
      `--base-path=${serve}`,
      serve,
    ],
    { stdio: "ignore" },
  );
}

/** Builds the namespaced link, or the loopback fallback when namespaces are not permitted. */
export async function openWan(o: WanOptions): Promise<WanLink> {
  try {
    return await namespaced(o);
  } catch (err) {
    o.log(
      `could not build the simulated link (${(err as Error).message}); FALLING BACK TO LOOPBACK`,
    );
    return loopback(o);
  }
}

async function namespaced(o: WanOptions): Promise<WanLink> {
  const id = String(process.pid % 100000);
  const nsO = `bprm-o-${id}`;
  const nsC = `bprm-c-${id}`;
  const vO = `bprmo${id}`;
  const vC = `bprmc${id}`;
  const children: ChildProcess[] = [];
  const close = () => {
    for (const c of children) c.kill();
    sh(["ip", "netns", "del", nsO]);
    sh(["ip", "netns", "del", nsC]);
  };
  process.once("exit", close);
  try {
    must(["ip", "netns", "add", nsO]);
    must(["ip", "netns", "add", nsC]);
    must(["ip", "link", "add", vO, "type", "veth", "peer", "name", vC]);
    must(["ip", "link", "set", vO, "netns", nsO]);
    must(["ip", "link", "set", vC, "netns", nsC]);
    must(["ip", "-n", nsO, "addr", "add", `${ORIGIN_IP}/30`, "dev", vO]);
    must(["ip", "-n", nsC, "addr", "add", `${CLIENT_IP}/30`, "dev", vC]);
    for (const [ns, dev] of [
      [nsO, vO],
      [nsC, vC],
    ] as const) {
      must(["ip", "-n", ns, "link", "set", "lo", "up"]);
      must(["ip", "-n", ns, "link", "set", dev, "up"]);
    }

    // netem does rate and delay in one qdisc; without it, tbf shapes and a relay delays.
    const half = `${o.rttMs / 2}ms`;
    const rate = `${o.rateMbit}mbit`;
    const netem = [nsO, nsC].every(
      (ns, i) =>
        sh([
          "ip",
          "netns",
          "exec",
          ns,
          "tc",
          "qdisc",
          "add",
          "dev",
          i ? vC : vO,
          "root",
          "netem",
          "delay",
          half,
          "rate",
          rate,
          "limit",
          "100000",
        ]).ok,
    );
    let description: string;
    const inO = ["ip", "netns", "exec", nsO];
    if (netem) {
      children.push(daemon(inO, o.serve, ORIGIN_IP, 9418));
      description = `netns + veth, tc netem ${rate} and ${half} each way (RTT ${o.rttMs} ms)`;
    } else {
      for (const [ns, dev] of [
        [nsO, vO],
        [nsC, vC],
      ] as const) {
        sh(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"]);
        must([
          "ip",
          "netns",
          "exec",
          ns,
          "tc",
          "qdisc",
          "add",
          "dev",
          dev,
          "root",
          "tbf",
          "rate",
          rate,
          "burst",
          "256kb",
          "latency",
          "400ms",
        ]);
      }
      children.push(daemon(inO, o.serve, "127.0.0.1", 9419));
      const relay = path.join(import.meta.dirname, "repo-mirror-delay.ts");
      children.push(
        spawn(
          "ip",
          [
            "netns",
            "exec",
            nsO,
            process.execPath,
            relay,
            ORIGIN_IP,
            "9418",
            "127.0.0.1",
            "9419",
            String(o.rttMs / 2),
          ],
          { stdio: "ignore" },
        ),
      );
      description = `netns + veth, tc tbf ${rate} (this kernel has no netem) and a userspace relay adding ${half} each way (RTT ${o.rttMs} ms)`;
    }
    await waitForPort(["ip", "netns", "exec", nsC], ORIGIN_IP, 9418);
    return {
      description,
      simulated: true,
      base: `git://${ORIGIN_IP}:9418`,
      client: ["ip", "netns", "exec", nsC],
      close,
    };
  } catch (err) {
    close();
    process.removeListener("exit", close);
    throw err;
  }
}

async function loopback(o: WanOptions): Promise<WanLink> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
  const child = daemon([], o.serve, "127.0.0.1", port);
  const close = () => child.kill();
  process.once("exit", close);
  await waitForPort([], "127.0.0.1", port);
  return {
    description:
      "LOOPBACK, NO SIMULATED LINK (network namespaces not permitted): cold clones look far cheaper than over a real network",
    simulated: false,
    base: `git://127.0.0.1:${port}`,
    client: [],
    close,
  };
}
