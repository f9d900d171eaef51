// Realistic log lines for the log-exporter benchmark: about 200 bytes each, a mix of access
// lines, application messages with quotes and key=values, and the odd tab, each carrying a
// unique `seq=<file>-<8 digits>` marker the receiver counts.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { join } from "node:path";

const LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const PATHS = [
  "/api/v1/builds",
  "/api/v1/jobs/artifacts",
  "/healthz",
  "/api/v2/pipelines/web/steps",
  "/assets/app.js",
];
const WORDS = [
  "compiled",
  "linked",
  "uploaded",
  "cache hit",
  "cache miss",
  "retrying",
  "connected",
  "timeout",
];

/** One line (without newline) for file `file`, line `n`, padded to about 200 bytes. */
export function logLine(file: number, n: number): string {
  const seq = `seq=${file}-${String(n).padStart(8, "0")}`;
  const ms = 1_767_225_600_000 + n * 7;
  const ts = new Date(ms).toISOString();
  const level = LEVELS[n % LEVELS.length];
  let line: string;
  if (n % 3 === 0) {
    const path = PATHS[n % PATHS.length];
    line = `${ts} ${level} http 10.0.${n % 250}.${(n * 7) % 250} "GET ${path}?page=${n % 40} HTTP/1.1" 200 ${1000 + (n % 9000)} ${seq} "Mozilla/5.0 (X11; Linux x86_64)"`;
  } else if (n % 3 === 1) {
    line = `${ts} ${level} [worker-${n % 16}] build step ${WORDS[n % WORDS.length]} in ${n % 977}ms job=01890a5d-ac96-774b-bcce-b302099a8057 ${seq} attempt=${n % 3}`;
  } else {
    line = `${ts} ${level}\tscheduler: queue depth=${n % 311} agents=${n % 57} ${seq} msg="dispatched \\"step-${n % 99}\\" to agent ${n % 57}"`;
  }
  return line.length >= 200 ? line : `${line}${" ".repeat(199 - line.length)}.`;
}

/**
 * Writes `files` files of about `mibPerFile` MiB each into `dir` (`app-<i>.log`); returns
 * how many lines each file holds (the same for all).
 */
export async function writeLogFiles(
  dir: string,
  files: number,
  mibPerFile: number,
): Promise<number> {
  const sample = Buffer.byteLength(`${logLine(0, 0)}\n`);
  const linesPerFile = Math.max(1, Math.floor((mibPerFile * 1024 * 1024) / sample));
  await Promise.all(
    Array.from({ length: files }, async (_, f) => {
      const out = createWriteStream(join(dir, `app-${f}.log`));
      let chunk: string[] = [];
      for (let n = 0; n < linesPerFile; n++) {
        chunk.push(logLine(f, n));
        if (chunk.length === 5000) {
          if (!out.write(`${chunk.join("\n")}\n`)) await once(out, "drain");
          chunk = [];
        }
      }
      if (chunk.length > 0) out.write(`${chunk.join("\n")}\n`);
      out.end();
      await once(out, "finish");
    }),
  );
  return linesPerFile;
}
