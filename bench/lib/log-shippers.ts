// How the log-exporter benchmark starts each shipper on the same input into the same receiver:
// our bundle, rsyslog (imfile → omelasticsearch) and syslog-ng (wildcard-file →
// elasticsearch-http with flow-control). Each gets a fresh work directory.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NODE_FLAGS } from "../../scripts/node-flags.ts";

export interface Shipper {
  name: string;
  start(input: { logs: string; port: number; work: string }): ChildProcess;
}

const ROOT = join(import.meta.dirname, "..", "..");
const BUNDLE = join(ROOT, "containers/log-exporter/dist/log-exporter.mjs");

/** Installs rsyslog (apt) and unpacks syslog-ng (private folder); returns that folder. */
export function installPeers(): string {
  const out = execFileSync("sh", [join(ROOT, "scripts/ci/install-log-shippers.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.trim().split("\n").at(-1) as string;
}

/**
 * Our bundle, run with `node` and the image's node flags (scripts/node-flags.ts), plus any given
 * here, which also go into the shipper's name.
 */
export function logExporter(extraFlags: string[] = []): Shipper {
  const nodeFlags = [...NODE_FLAGS, ...extraFlags];
  return {
    name: extraFlags.length === 0 ? "log-exporter" : `log-exporter ${extraFlags.join(" ")}`,
    start({ logs, port, work }) {
      const sinks = join(work, "sinks.yaml");
      writeFileSync(
        sinks,
        `default: bench\nsinks:\n  bench:\n    type: elasticsearch\n    nodes: ["http://127.0.0.1:${port}"]\n    index: bench\n`,
      );
      const args = [
        BUNDLE,
        "--logs",
        logs,
        "--sinks",
        sinks,
        "--lifecycle-dir",
        join(work, "lc"),
        "--state-dir",
        join(work, "state"),
      ];
      return spawn(process.execPath, [...nodeFlags, ...args], {
        env: {
          PATH: process.env.PATH ?? "",
          BUILDKITE_JOB_ID: "bench",
          BUILDPOD_LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "ignore", "inherit"],
      });
    },
  };
}

export const rsyslog: Shipper = {
  name: "rsyslog",
  start({ logs, port, work }) {
    mkdirSync(join(work, "spool"), { recursive: true });
    const conf = join(work, "rsyslog.conf");
    writeFileSync(
      conf,
      [
        `global(workDirectory="${work}/spool")`,
        `module(load="imfile" mode="inotify")`,
        `module(load="omelasticsearch")`,
        `template(name="doc" type="list" option.jsonf="on") {`,
        `  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")`,
        `  property(outname="message" name="msg" format="jsonf")`,
        `  property(outname="path" name="$!metadata!filename" format="jsonf")`,
        `}`,
        `input(type="imfile" File="${logs}/*.log" Tag="bench" addMetadata="on" ruleset="ship")`,
        `ruleset(name="ship") {`,
        `  action(type="omelasticsearch" server="127.0.0.1" serverport="${port}" searchIndex="bench"`,
        `         template="doc" bulkmode="on" maxbytes="5m" action.resumeRetryCount="-1"`,
        `         queue.type="linkedList" queue.dequeueBatchSize="1000")`,
        `}`,
      ].join("\n"),
    );
    return spawn("rsyslogd", ["-n", "-f", conf, "-i", join(work, "rsyslogd.pid")], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  },
};

/** syslog-ng run from the folder `install-log-shippers.sh` unpacked it into. */
export function syslogNg(folder: string): Shipper {
  const root = join(folder, "root");
  const version = readdirVersion(root);
  return {
    name: "syslog-ng",
    start({ logs, port, work }) {
      const conf = join(work, "syslog-ng.conf");
      writeFileSync(
        conf,
        [
          `@version: ${version}`,
          `@include "${join(root, "etc/syslog-ng/scl.conf")}"`,
          `options { stats-freq(0); };`,
          `source s_files { wildcard-file(base-dir("${logs}") filename-pattern("*.log") flags(no-parse) max-files(64) follow-freq(1)); };`,
          `destination d_es { elasticsearch-http(url("http://127.0.0.1:${port}/_bulk") index("bench") type("") batch-lines(1000) workers(2)); };`,
          `log { source(s_files); destination(d_es); flags(flow-control); };`,
        ].join("\n"),
      );
      const lib = [
        join(root, "usr/lib/x86_64-linux-gnu"),
        join(root, "lib/x86_64-linux-gnu"),
        join(root, "usr/lib/syslog-ng"),
      ];
      return spawn(
        join(root, "usr/sbin/syslog-ng"),
        [
          "-F",
          "--no-caps",
          "-f",
          conf,
          `--module-path=${join(root, `usr/lib/syslog-ng/${version}`)}`,
          `--persist-file=${join(work, "syslog-ng.persist")}`,
          `--pidfile=${join(work, "syslog-ng.pid")}`,
          `--control=${join(work, "syslog-ng.ctl")}`,
        ],
        {
          // SYSLOGNG_PREFIX relocates the compiled-in paths (include path, modules) into the folder.
          env: {
            PATH: process.env.PATH ?? "",
            LD_LIBRARY_PATH: lib.join(":"),
            SYSLOGNG_PREFIX: join(root, "usr"),
          },
          stdio: ["ignore", "ignore", "inherit"],
        },
      );
    },
  };
}

/** The module folder is named after the major.minor version, e.g. usr/lib/syslog-ng/3.38. */
function readdirVersion(root: string): string {
  const entries = readdirSync(join(root, "usr/lib/syslog-ng"));
  return entries.find((e) => /^\d+\.\d+$/.test(e)) ?? "3.38";
}

/** CPU seconds (user + system) and peak RSS in MiB of a live process, from /proc. */
export function processUsage(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) in clock ticks; Linux uses 100 per second.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return { cpuSeconds: ticks / 100, peakRssMiB: hwm ? Number(hwm[1]) / 1024 : Number.NaN };
}
