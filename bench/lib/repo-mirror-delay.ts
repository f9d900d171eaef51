/**
 * A TCP relay that adds a fixed one-way delay to every chunk, in both directions, keeping
 * order and not limiting throughput (chunks are in flight together, as on a long link). The
 * repo-mirror benchmark runs it inside origin's network namespace because this kernel has no
 * `netem` qdisc; the bandwidth limit stays in the kernel (`tbf` on the veth).
 *
 *   node repo-mirror-delay.ts LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
 */
import { createConnection, createServer, type Socket } from "node:net";

const [listenHost = "", listenPort = "0", targetHost = "", targetPort = "0", delay = "10"] =
  process.argv.slice(2);
const delayMs = Number(delay);

/** Copies `from` to `to`, each chunk `delayMs` after it arrived; ends `to` after the last. */
function delayed(from: Socket, to: Socket): void {
  let queued = 0;
  let ended = false;
  from.on("data", (chunk) => {
    queued++;
    // Back-pressure: stop reading while the writer is full, as a real link's queue would.
    setTimeout(() => {
      queued--;
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
      if (ended && queued === 0) to.end();
    }, delayMs);
  });
  from.on("end", () => {
    ended = true;
    if (queued === 0) setTimeout(() => to.end(), delayMs);
  });
  from.on("error", () => to.destroy());
}

const server = createServer((client) => {
  const upstream = createConnection({ host: targetHost, port: Number(targetPort) });
  delayed(client, upstream);
  delayed(upstream, client);
  upstream.on("error", () => client.destroy());
});
server.listen(Number(listenPort), listenHost, () => process.stdout.write("ready\n"));
process.on("SIGTERM", () => process.exit(0));
