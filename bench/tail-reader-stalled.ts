/**
 * The stalled consumer of bench/tail-reader.bench.ts, run as its own (bundled) process: tails
 * the directory given as its argument with the default byte budget, takes batches and reads
 * their lines but never acknowledges them, and once reading has paused for 2 s prints its
 * peak RSS (VmHWM), its RSS and the tailer's stats as one JSON line.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type LineBatch, Tailer } from "../shared/volume-watch/src/index.ts";

const dir = process.argv[2];
if (!dir) throw new Error("usage: tail-reader-stalled <directory with *.log files>");

const tailer = new Tailer({ root: dir, include: ["*.log"] });
await tailer.start();
const held: LineBatch[] = [];
let chars = 0;
for (;;) {
  const batch = await Promise.race([tailer.next(), sleep(2_000).then(() => "stalled" as const)]);
  if (batch === "stalled" || batch === undefined) break;
  for (const line of batch.lines) chars += line.text.length;
  held.push(batch); // never acknowledged, never let go
}

const status = readFileSync("/proc/self/status", "utf8");
const mib = (key: string) =>
  Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) / 1024;
const result = {
  peakMiB: mib("VmHWM"),
  rssMiB: mib("VmRSS"),
  stats: tailer.stats(),
  batches: held.length,
  chars,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
await tailer.close();
process.exit(0);
