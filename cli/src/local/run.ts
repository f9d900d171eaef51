import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { writeMarker } from "@buildpod/runtime";
import { NODE_FLAGS } from "../../../scripts/node-flags.ts";
import type { ContainerModel, PodModel } from "../pod.ts";
import { freePort } from "./ports.ts";
import { exitsWithin, type LocalProcess, startProcess } from "./processes.ts";

export interface LocalRunOptions {
  /** A fresh folder for this run: volumes, container logs. */
  runDir: string;
  /** This pod's folder of CRI log files, as the kubelet's /var/log/pods/<ns>_<pod>_<uid>. */
  podLogsDir: string;
  /** The bundle of a buildpod program, e.g. `containers/log-exporter/dist/log-exporter.mjs`. */
  bundleOf(program: string): string;
  /** Progress for the person watching; one line at a time. */
  progress(line: string): void;
  /** Called while the sidecars still run after the workload exited, before they are stopped. */
  beforeStop?(context: LocalPodContext): Promise<void>;
}

/** What the run knows about the local pod: its folders and ports. */
export interface LocalPodContext {
  pod: PodModel;
  /** Volume name → local folder. */
  volumes: Map<string, string>;
  /** Port in the pod → port on this machine. */
  ports: Map<number, number>;
  /** The CRI log file of a container, as the kubelet would write it. */
  criLogOf(container: string): string;
  /** The in-pod path mapped to this machine. */
  localPath(container: ContainerModel, podPath: string): string;
}

export interface ContainerResult {
  name: string;
  role: "init" | "sidecar" | "workload";
  exitCode: number | undefined;
  durationMs: number;
  lines: number;
  /** The container's status file, when it wrote one. */
  status?: { exit_code: number; summary: Record<string, unknown> };
}

export interface LocalRunReport {
  ok: boolean;
  /** Why the run stopped early (a failed init container), if it did. */
  failure?: string;
  wallMs: number;
  initMs: number;
  containers: ContainerResult[];
  context: LocalPodContext;
}

/**
 * Runs a pod on this machine in Kubernetes' order: each init container to completion (the
 * first failure ends the run), then the sidecars (native: one by one, each started once ready)
 * and the workload together; when the workload exits the sidecars learn it as the pod's mode
 * says (native: SIGTERM, in reverse order; classic: the marker the wrapped workload wrote), and
 * the run waits for them no longer than the grace period.
 */
export async function runLocally(pod: PodModel, options: LocalRunOptions): Promise<LocalRunReport> {
  const started = Date.now();
  const context = await prepare(pod, options.runDir, options.podLogsDir);
  const results: ContainerResult[] = [];
  const say = options.progress;

  for (const container of pod.initContainers) {
    say(`init ${container.name}: starting`);
    const proc = start(container, context, options, "init");
    const code = await proc.exited;
    results.push(result(proc, "init", code, context));
    if (code !== 0) {
      const failure = `init container ${container.name} failed with exit code ${code}; ${lastLines(proc)}`;
      const wallMs = Date.now() - started;
      return { ok: false, failure, wallMs, initMs: wallMs, containers: results, context };
    }
    say(`init ${container.name}: done in ${Date.now() - proc.startedAt} ms`);
  }
  const initMs = Date.now() - started;

  const sidecars: LocalProcess[] = [];
  for (const container of pod.sidecars) {
    const proc = start(container, context, options, "sidecar");
    sidecars.push(proc);
    if (pod.sidecarMode === "native" && container.readyPort) {
      await waitReady(context.ports.get(container.readyPort) ?? container.readyPort, proc);
    }
    say(`sidecar ${container.name}: started`);
  }

  say(`workload ${pod.workload.name}: starting`);
  const workload = start(pod.workload, context, options, "workload");
  const ticker = setInterval(
    () => say(`workload ${pod.workload.name}: ${workload.lineCount()} lines so far`),
    5_000,
  );
  const workloadCode = await workload.exited;
  clearInterval(ticker);
  results.push(result(workload, "workload", workloadCode, context));
  say(
    `workload ${pod.workload.name}: exited with ${workloadCode} after ${workload.lineCount()} lines`,
  );

  await options.beforeStop?.(context);
  if (pod.sidecarMode === "classic") await markFinished(context, workloadCode, say);
  await stopSidecars(pod, sidecars, say);
  for (const proc of sidecars) {
    const code = await settled(proc);
    results.push(result(proc, "sidecar", code, context));
    if (code !== 0)
      say(`sidecar ${proc.name}: exited with ${code ?? "SIGKILL"}; ${lastLines(proc)}`);
  }

  // The pod succeeded when every container did, the workload included, as in Kubernetes.
  const ok = results.every((r) => r.exitCode === 0);
  return { ok, wallMs: Date.now() - started, initMs, containers: results, context };
}

/** "its last lines:" and a container's last lines, readable, one an indented line. */
function lastLines(proc: LocalProcess): string {
  return `its last lines:\n${proc
    .lastLines()
    .map((l) => `    ${readable(l)}`)
    .join("\n")}`;
}

// Fields a readable line leaves out: the logger's own, and those it shows otherwise.
const NOT_SHOWN = new Set(["level", "time", "pid", "hostname", "component", "msg", "err", "hint"]);

/**
 * A JSON log line as `level: message (error); hint [field=value ...]`, with the line's short
 * plain fields (a phase, a count, an exit code); other lines as they are.
 */
export function readable(line: string): string {
  if (!line.startsWith("{")) return line;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const msg = typeof entry.msg === "string" ? entry.msg : "";
    // pino appends each cause's message to `err.message`, which often repeats `msg`.
    const message = (entry.err as { message?: unknown } | undefined)?.message;
    const err = typeof message === "string" && !message.includes(msg) ? ` (${message})` : "";
    const hint = entry.hint ? `; ${entry.hint}` : "";
    const fields = Object.entries(entry)
      .filter(([key, value]) => !NOT_SHOWN.has(key) && isShort(value))
      .map(([key, value]) => `${key}=${value}`);
    const shown = fields.length > 0 ? ` [${fields.join(" ")}]` : "";
    return `${entry.level ?? "log"}: ${msg}${err}${hint}${shown}`;
  } catch {
    return line;
  }
}

function isShort(value: unknown): boolean {
  if (typeof value === "number" || typeof value === "boolean") return true;
  return typeof value === "string" && value.length <= 60;
}

/**
 * A classic sidecar in a cluster also watches the pod, which reports a workload that ended
 * without writing the marker: its wrapper shell killed (OOMKilled, `kill -9`) before it could.
 * No API server runs here, so the run plays the watch's part and writes the marker itself with
 * the exit code it saw; otherwise the sidecars would wait for the grace period's SIGKILL.
 */
async function markFinished(context: LocalPodContext, code: number, say: (l: string) => void) {
  const marker = path.join(context.volumes.get("lifecycle") ?? "", "workload-finished");
  if (existsSync(marker)) return;
  say(`workload ${context.pod.workload.name}: no marker written; the run writes it (${code})`);
  await writeMarker(marker, code);
}

async function settled(proc: LocalProcess): Promise<number | undefined> {
  return (await exitsWithin(proc, 0)) ? proc.exited : undefined;
}

/**
 * Native sidecars get SIGTERM one at a time in reverse order once the workload exited; classic
 * ones find the marker. Either way the whole stop shares one grace period, after which what
 * is left gets SIGKILL, as the kubelet does.
 */
async function stopSidecars(pod: PodModel, sidecars: LocalProcess[], say: (l: string) => void) {
  const deadline = Date.now() + pod.terminationGracePeriodSeconds * 1000;
  if (pod.sidecarMode === "native") {
    for (const proc of [...sidecars].reverse()) {
      say(`sidecar ${proc.name}: SIGTERM`);
      proc.child.kill("SIGTERM");
      await exitsWithin(proc, deadline - Date.now());
    }
  } else {
    await Promise.all(sidecars.map((proc) => exitsWithin(proc, deadline - Date.now())));
  }
  for (const proc of sidecars) {
    if (!(await exitsWithin(proc, 0))) {
      say(`sidecar ${proc.name}: still running at the end of the grace period, SIGKILL`);
      proc.child.kill("SIGKILL");
      await proc.exited;
    }
  }
}

function result(
  proc: LocalProcess,
  role: ContainerResult["role"],
  exitCode: number | undefined,
  context: LocalPodContext,
): ContainerResult {
  const statusFile = path.join(
    context.volumes.get("lifecycle") ?? "",
    "status",
    `${proc.name}.json`,
  );
  let status: ContainerResult["status"];
  if (existsSync(statusFile)) status = JSON.parse(readFileSync(statusFile, "utf8"));
  return {
    name: proc.name,
    role,
    exitCode,
    durationMs: Date.now() - proc.startedAt,
    lines: proc.lineCount(),
    status,
  };
}

function start(
  container: ContainerModel,
  context: LocalPodContext,
  options: LocalRunOptions,
  role: ContainerResult["role"],
): LocalProcess {
  const map = (value: string) => context.localPath(container, value);
  const argv = container.localCommand
    ? container.localCommand.map(map)
    : container.program
      ? [
          process.execPath,
          ...NODE_FLAGS,
          options.bundleOf(container.program),
          ...container.args.map(map),
        ]
      : [...(container.command ?? []), ...container.args].map(map);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    TMPDIR: path.join(options.runDir, "tmp"),
    // A pod's network is its own; this machine's is not: servers listen on loopback only.
    BUILDPOD_HTTP_HOST: "127.0.0.1",
  };
  for (const [name, value] of Object.entries(container.env)) {
    env[name] = PORT_ENV.test(name) ? mapPort(value, context) : map(value);
  }
  for (const [name, fieldPath] of Object.entries(container.fieldEnv ?? {})) {
    env[name] = fieldPath === "metadata.name" ? context.pod.name : context.pod.namespace;
  }
  const workspace = context.localPath(container, "/workspace");
  const cwd = role === "workload" && existsSync(workspace) ? workspace : options.runDir;
  return startProcess({
    name: container.name,
    argv,
    cwd,
    env,
    logFile: path.join(options.runDir, "logs", `${container.name}.log`),
    criLogFile: context.criLogOf(container.name),
  });
}

// Env vars that carry a port or a listen address; the local run moves their ports.
const PORT_ENV = /(PORT|LISTEN|ADDR|ADDRESS)$/;

/**
 * `9100`, `:9100` or `0.0.0.0:9100` with the pod's port replaced by this machine's; an address
 * on every interface becomes loopback.
 */
function mapPort(value: string, context: LocalPodContext): string {
  const match = /^(.*?)(\d+)$/.exec(value);
  const local = match ? context.ports.get(Number(match[2])) : undefined;
  if (!match || !local) return value;
  const host = match[1] === ":" || match[1] === "0.0.0.0:" ? "127.0.0.1:" : match[1];
  return `${host}${local}`;
}

async function prepare(pod: PodModel, runDir: string, podLogs: string): Promise<LocalPodContext> {
  for (const dir of ["logs", "tmp", "volumes"])
    mkdirSync(path.join(runDir, dir), { recursive: true });
  const volumes = new Map<string, string>();
  for (const volume of pod.volumes) {
    const dir = volume.localPath ?? path.join(runDir, "volumes", volume.name);
    mkdirSync(dir, { recursive: true });
    volumes.set(volume.name, dir);
    if (volume.source.kind === "configMap" || volume.source.kind === "secret") {
      for (const [target, source] of Object.entries(volume.localFiles ?? {})) {
        copyFileSync(source, path.join(dir, target));
      }
    }
  }
  const ports = new Map<number, number>();
  for (const c of [...pod.initContainers, ...pod.sidecars, pod.workload]) {
    for (const port of [c.readyPort, ...(c.ports ?? []).map((p) => p.port)]) {
      if (port && !ports.has(port)) ports.set(port, await freePort());
    }
  }
  // <pod logs>/<container>/0.log, as the kubelet lays out /var/log/pods/<ns>_<pod>_<uid>;
  // every container's folder exists from the start, so a reader can watch it before it runs.
  for (const c of [...pod.initContainers, ...pod.sidecars, pod.workload]) {
    mkdirSync(path.join(podLogs, c.name), { recursive: true });
  }
  const criLogOf = (container: string) => {
    mkdirSync(path.join(podLogs, container), { recursive: true });
    return path.join(podLogs, container, "0.log");
  };
  const localPath = (container: ContainerModel, value: string) => {
    const mounts = [...container.mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
    for (const m of mounts) {
      const local = volumes.get(m.volume);
      if (!local) continue;
      const pattern = new RegExp(`(^|[:=])${escapeRegExp(m.mountPath)}(?=/|$)`);
      if (pattern.test(value)) return value.replace(pattern, `$1${local}`);
    }
    return value;
  };
  return { pod, volumes, ports, criLogOf, localPath };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Polls `/readyz` like the startup probe does: every 100 ms, up to 30 s. */
async function waitReady(port: number, proc: LocalProcess): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (await exitsWithin(proc, 0)) return;
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Names of the status files the containers left, for the report. */
export function statusFiles(context: LocalPodContext): string[] {
  const dir = path.join(context.volumes.get("lifecycle") ?? "", "status");
  return existsSync(dir) ? readdirSync(dir) : [];
}
