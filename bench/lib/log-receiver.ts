// A counting `_bulk` receiver for the log-exporter benchmark, run as its own process so that
// its CPU is not charged to the shipper under test.
//
// Every generated line carries `seq=<file>-<8 digits>`; the receiver finds that marker in each
// document, counts it in a per-file table, and so knows how many distinct lines arrived and how
// many came twice, whatever field name the shipper put the message in. It answers
// `{"errors":false}` like Elasticsearch when every item succeeded.
//
//   node bench/lib/log-receiver.ts <files> <linesPerFile> [delayMs]
//   prints {"port":N} once listening; GET /_stats returns the counts.
import { createServer } from "node:http";

const [files, linesPerFile, delayMs] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number?,
];
const seen = Array.from({ length: files }, () => new Uint8Array(linesPerFile));
const stats = { docs: 0, distinct: 0, duplicates: 0, requests: 0, bytes: 0, firstAt: 0, lastAt: 0 };
const OK = Buffer.from('{"took":0,"errors":false,"items":[]}');

function count(body: Buffer): void {
  // One latin1 string and String#indexOf: far cheaper per match than Buffer#indexOf.
  const text = body.toString("latin1");
  let at = text.indexOf("seq=");
  while (at >= 0) {
    const file = text.charCodeAt(at + 4) - 48;
    let n = 0;
    for (let i = at + 6; i < at + 14; i++) n = n * 10 + (text.charCodeAt(i) - 48);
    const table = seen[file];
    if (table && n < linesPerFile) {
      stats.docs++;
      if (table[n] === 0) stats.distinct++;
      else stats.duplicates++;
      if ((table[n] as number) < 255) table[n] = (table[n] as number) + 1;
    }
    at = text.indexOf("seq=", at + 14);
  }
}

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/_stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === "GET" || req.method === "HEAD") {
    // rsyslog and the official client ask for the server's version first.
    res.writeHead(200, {
      "content-type": "application/json",
      "x-elastic-product": "Elasticsearch",
    });
    res.end(
      req.method === "HEAD"
        ? undefined
        : '{"version":{"number":"8.11.0"},"tagline":"You Know, for Search"}',
    );
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const answer = () => {
      count(body);
      stats.requests++;
      stats.bytes += body.length;
      const now = Date.now();
      if (stats.firstAt === 0) stats.firstAt = now;
      stats.lastAt = now;
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": OK.length,
        "x-elastic-product": "Elasticsearch",
      });
      res.end(OK);
    };
    // A slow sink: every request waits before it is counted and answered.
    if (delayMs) setTimeout(answer, delayMs);
    else answer();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
