import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A loopback port nobody listens on right now, for a server the local run starts a moment
 * later. It is picked below the kernel's ephemeral range (ip_local_port_range): a port from
 * that range, found free, can be taken by any outgoing connection or `listen(0)` before the
 * server binds it, which busy machines (a test suite opening thousands of connections) do.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = Math.max(1024, low - 10_000);
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (await canListen(port)) return port;
  }
  return listenOn(0);
}

/** The kernel's ephemeral port range; Linux's default where it cannot be read. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high && low > 2048) return [low, high];
  } catch {
    // not Linux, or no /proc
  }
  return [32768, 60999];
}

function canListen(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

/** Binds `port` on loopback, closes it again and returns the port bound. */
function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}
