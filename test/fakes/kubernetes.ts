/**
 * A fake Kubernetes API server on loopback: just enough of core/v1 pods for the sidecar
 * lifecycle's pod watch and the log exporter, speaking the real wire protocol. Clients talk
 * HTTP (or HTTPS) to it exactly as they would to the API server inside a cluster.
 *
 * Start and stop:
 *   const kube = await startFakeKubernetes({ token: "t0ken" });   // tls: { key, cert } for https
 *   kube.url            // "http://127.0.0.1:<port>", what BUILDPOD_KUBERNETES_API would hold
 *   kube.token = "new"  // rotate the token: later requests must carry the new one
 *   await kube.close()  // ends every stream and closes the server
 *
 * Pods (resourceVersions come from one counter, as etcd revisions do):
 *   const pod = kube.addPod({ name: "job-1", namespace: "ci", containers: ["workload", "logs"] })
 *   pod.start("workload")                       // waiting -> running (containers start running)
 *   pod.wait("workload", "ContainerCreating")   // running -> waiting
 *   pod.terminate("workload", { exitCode: 137, reason: "OOMKilled" })
 *   pod.log("workload", "line 1", "line 2")     // append log lines, timestamped now
 *   pod.logAt(time, "workload", "line")          // ... with an explicit time (Date or ns bigint)
 *   pod.delete()
 * Each change is a MODIFIED event (ADDED, DELETED) for watchers and is kept in the history.
 *
 * Endpoints (every request needs `Authorization: Bearer <token>`, else 401 with a Status):
 *   GET /api/v1/namespaces/{ns}/pods/{name}     the Pod, or 404 with a NotFound Status
 *   GET /api/v1/namespaces/{ns}/pods            PodList with metadata.resourceVersion
 *   GET /api/v1/pods                            the same over all namespaces
 *     ?fieldSelector=metadata.name=X,metadata.namespace=Y   (other fields: 400)
 *     ?watch=true[&resourceVersion=N][&allowWatchBookmarks=true][&timeoutSeconds=S]
 *       A chunked stream of newline-delimited `{"type","object"}` events. Without a
 *       resourceVersion (or "0") it starts with a synthetic ADDED per matching pod; with one it
 *       replays the history after it. A version older than the last `compact()` gets an ERROR
 *       event holding a 410 Expired Status, as the API server's watch cache answers (or an
 *       HTTP 410 with `goneAs: "http"`). The stream ends after timeoutSeconds.
 *   GET /api/v1/namespaces/{ns}/pods/{name}/log
 *     ?container= (needed when the pod has several) &follow= &timestamps= &sinceTime= (RFC 3339)
 *     &sinceSeconds= &tailLines= &limitBytes= &previous= (no previous instance: always 400)
 *       text/plain, one line per entry, prefixed by the kubelet's fixed-width RFC3339Nano
 *       timestamp and a space when timestamps=true. A waiting container answers 400. With
 *       follow the stream stays open for new lines and ends once the container has terminated
 *       and every line is sent, as the kubelet does; limitBytes cuts the stream (mid-line).
 *
 * Faults and inspection:
 *   kube.dropConnections("watch" | "log" | undefined)  destroy open streams mid-stream (count)
 *   kube.endStreams("watch" | "log" | undefined)       end them cleanly, as a timeout does
 *   kube.dropNextLogStream({ afterBytes: 100 })  cut the next log stream after exactly 100
 *                           body bytes (mid-line if they end there), to test resuming
 *   kube.compact()          every resourceVersion seen so far becomes too old (410 on watch)
 *   kube.bookmark()         send a BOOKMARK to watchers that allowed them
 *   kube.requests           method, path, query, status of every request
 *   await kube.waitForRequest((r) => r.query.watch === "true", { count: 2 })
 *   kube.openStreams("watch" | "log")
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";

export interface FakeKubernetesOptions {
  /** The bearer token requests must carry; default "fake-token". */
  token?: string;
  /** Serve HTTPS with this certificate (PEM) instead of HTTP. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** How a watch from a compacted resourceVersion is refused; default "event". */
  goneAs?: "event" | "http";
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
}

type StreamKind = "watch" | "log";
type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface ContainerState {
  running?: { startedAt: string };
  waiting?: { reason: string };
  terminated?: {
    exitCode: number;
    reason: string;
    message?: string;
    startedAt?: string;
    finishedAt: string;
    containerID: string;
  };
}

interface LogEntry {
  timeNs: bigint;
  text: string;
}

interface Watcher {
  res: ServerResponse;
  matches(pod: FakePod): boolean;
  bookmarks: boolean;
}

interface LogFollower {
  res: ServerResponse;
  container: string;
  write(entry: LogEntry): boolean;
}

export async function startFakeKubernetes(opts: FakeKubernetesOptions = {}) {
  const kube = new FakeKubernetes(opts);
  await kube.listen();
  return kube;
}

export class FakeKubernetes {
  token: string;
  url = "";
  readonly requests: RecordedRequest[] = [];
  readonly #server: http.Server;
  readonly #goneAs: "event" | "http";
  readonly #pods = new Map<string, FakePod>();
  readonly #history: { revision: number; type: EventType; pod: FakePod; object: object }[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #streams = new Map<ServerResponse, StreamKind>();
  readonly #requestWaiters = new Set<() => void>();
  #revision = 1000;
  #compactedAt = 0;
  #lastLogNs = 0n;
  readonly #logDrops: number[] = [];

  constructor(opts: FakeKubernetesOptions) {
    this.token = opts.token ?? "fake-token";
    this.#goneAs = opts.goneAs ?? "event";
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#route(req, res);
    this.#server = opts.tls ? https.createServer(opts.tls, handler) : http.createServer(handler);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const { port } = this.#server.address() as AddressInfo;
    const scheme = this.#server instanceof https.Server ? "https" : "http";
    this.url = `${scheme}://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    for (const res of this.#streams.keys()) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  addPod(spec: { name: string; namespace?: string; containers: string[] }): FakePod {
    const pod = new FakePod(this, spec.namespace ?? "default", spec.name, spec.containers);
    this.#pods.set(pod.key, pod);
    this.changed(pod, "ADDED");
    return pod;
  }

  /** Every resourceVersion up to now becomes too old to watch from. */
  compact(): void {
    this.#compactedAt = this.#revision + 1;
    this.#history.length = 0;
  }

  bookmark(): void {
    const event = {
      type: "BOOKMARK",
      object: { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: `${this.#revision}` } },
    };
    for (const w of this.#watchers) if (w.bookmarks) writeEvent(w.res, event);
  }

  /** Ends open streams of one kind (or all) cleanly, as a watch's timeoutSeconds does. */
  endStreams(kind?: StreamKind): number {
    let ended = 0;
    for (const [res, streamKind] of this.#streams) {
      if (kind && streamKind !== kind) continue;
      res.end();
      ended += 1;
    }
    return ended;
  }

  /** Destroys open streams of one kind (or all) without finishing them; returns how many. */
  dropConnections(kind?: StreamKind): number {
    let dropped = 0;
    for (const [res, streamKind] of this.#streams) {
      if (kind && streamKind !== kind) continue;
      res.socket?.destroy();
      dropped += 1;
    }
    return dropped;
  }

  /**
   * The next log stream opened is cut after exactly `afterBytes` bytes of body, mid-line if
   * that is where they end; calls queue up, one per stream.
   */
  dropNextLogStream({ afterBytes }: { afterBytes: number }): void {
    if (!(Number.isInteger(afterBytes) && afterBytes > 0)) {
      throw new RangeError(`afterBytes must be a positive integer, got ${afterBytes}`);
    }
    this.#logDrops.push(afterBytes);
  }

  openStreams(kind?: StreamKind): number {
    return [...this.#streams.values()].filter((k) => !kind || k === kind).length;
  }

  /** Resolves once `count` requests (ever) match; rejects after `timeoutMs`. */
  waitForRequest(
    match: (r: RecordedRequest) => boolean,
    { count = 1, timeoutMs = 10_000 } = {},
  ): Promise<RecordedRequest> {
    const found = () => this.requests.filter(match)[count - 1];
    return new Promise((resolve, reject) => {
      const check = () => {
        const request = found();
        if (!request) return;
        clearTimeout(timer);
        this.#requestWaiters.delete(check);
        resolve(request);
      };
      const timer = setTimeout(() => {
        this.#requestWaiters.delete(check);
        reject(new Error(`no ${count} matching request(s) to the fake Kubernetes API in time`));
      }, timeoutMs);
      timer.unref();
      this.#requestWaiters.add(check);
      check();
    });
  }

  /** Called by FakePod on every change: new revision, history entry, watch events. */
  changed(pod: FakePod, type: EventType): void {
    this.#revision += 1;
    pod.resourceVersion = this.#revision;
    const object = pod.toJSON();
    this.#history.push({ revision: this.#revision, type, pod, object });
    for (const w of this.#watchers) if (w.matches(pod)) writeEvent(w.res, { type, object });
    if (type === "DELETED") this.#pods.delete(pod.key);
  }

  /** A strictly increasing log clock in nanoseconds, so no two lines share a timestamp. */
  nextLogTime(): bigint {
    const now = BigInt(Date.now()) * 1_000_000n;
    this.#lastLogNs = now > this.#lastLogNs ? now : this.#lastLogNs + 1n;
    return this.#lastLogNs;
  }

  #route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://fake");
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: 200,
    };
    this.requests.push(record);
    res.on("finish", () => this.#notifyWaiters());
    const reply = (code: number, body: object) => {
      record.status = code;
      sendJson(res, code, body);
    };
    queueMicrotask(() => this.#notifyWaiters());

    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return reply(401, status(401, "Unauthorized", "Unauthorized"));
    }
    if (req.method !== "GET") {
      return reply(405, status(405, "MethodNotAllowed", "the fake serves GET only"));
    }
    const path = url.pathname.split("/").filter(Boolean);
    try {
      this.#dispatch(path, url.searchParams, res, reply);
    } catch (err) {
      if (err instanceof ApiError)
        return reply(err.code, status(err.code, err.reason, err.message));
      throw err;
    }
  }

  #dispatch(
    path: string[],
    query: URLSearchParams,
    res: ServerResponse,
    reply: (code: number, body: object) => void,
  ): void {
    // /api/v1/pods | /api/v1/namespaces/{ns}/pods[/{name}[/log]]
    const [api, v1, third, ns, pods, name, sub] = path;
    const unknown = notFound("the server could not find the requested resource");
    if (api !== "api" || v1 !== "v1") throw unknown;
    if (third === "pods" && path.length === 3) {
      this.#collection(undefined, query, res, reply);
    } else if (third !== "namespaces" || pods !== "pods" || !ns) {
      throw unknown;
    } else if (!name) {
      this.#collection(ns, query, res, reply);
    } else {
      const pod = this.#pods.get(`${ns}/${name}`);
      if (!pod) throw notFound(`pods "${name}" not found`);
      if (!sub && path.length === 6) reply(200, pod.toJSON());
      else if (sub === "log" && path.length === 7) this.#log(pod, query, res);
      else throw unknown;
    }
  }

  #collection(
    namespace: string | undefined,
    query: URLSearchParams,
    res: ServerResponse,
    reply: (code: number, body: object) => void,
  ): void {
    const matches = podFilter(namespace, query.get("fieldSelector"));
    const watch = query.get("watch");
    if (watch === "true" || watch === "1") {
      this.#watch(matches, query, res);
      return;
    }
    const items = [...this.#pods.values()].filter(matches).map((p) => p.toJSON());
    const metadata = { resourceVersion: `${this.#revision}` };
    reply(200, { kind: "PodList", apiVersion: "v1", metadata, items });
  }

  #watch(matches: (pod: FakePod) => boolean, query: URLSearchParams, res: ServerResponse): void {
    const from = query.get("resourceVersion");
    const fromRevision = from && from !== "0" ? Number(from) : undefined;
    if (fromRevision !== undefined && !(fromRevision >= this.#compactedAt)) {
      const gone = status(
        410,
        "Expired",
        `too old resource version: ${from} (${this.#compactedAt})`,
      );
      if (this.#goneAs === "http") throw new ApiError(410, "Expired", gone.message);
      startStream(res, "application/json");
      writeEvent(res, { type: "ERROR", object: gone });
      res.end();
      return;
    }

    startStream(res, "application/json");
    if (fromRevision === undefined) {
      for (const pod of this.#pods.values()) {
        if (matches(pod)) writeEvent(res, { type: "ADDED", object: pod.toJSON() });
      }
    } else {
      for (const e of this.#history) {
        if (e.revision > fromRevision && matches(e.pod)) {
          writeEvent(res, { type: e.type, object: e.object });
        }
      }
    }

    const watcher = { res, matches, bookmarks: query.get("allowWatchBookmarks") === "true" };
    this.#watchers.add(watcher);
    this.#track(res, "watch", () => this.#watchers.delete(watcher));
    const timeout = Number(query.get("timeoutSeconds") ?? 0);
    if (timeout > 0) {
      const timer = setTimeout(() => res.end(), timeout * 1000);
      timer.unref();
      res.on("close", () => clearTimeout(timer));
    }
  }

  #log(pod: FakePod, query: URLSearchParams, res: ServerResponse): void {
    const options = parseLogOptions(pod, query);
    const state = pod.state(options.container);
    if (query.get("previous") === "true") {
      throw badRequest(
        `previous terminated container "${options.container}" in pod "${pod.name}" not found`,
      );
    }
    if (state.waiting) {
      throw badRequest(
        `container "${options.container}" in pod "${pod.name}" is waiting to start: ${state.waiting.reason}`,
      );
    }

    startStream(res, "text/plain");
    let budget = options.limitBytes ?? Number.POSITIVE_INFINITY;
    let untilDrop = this.#logDrops.shift() ?? Number.POSITIVE_INFINITY;
    const write = (entry: LogEntry): boolean => {
      if (options.sinceNs !== undefined && entry.timeNs < options.sinceNs) return true;
      const prefix = options.timestamps ? `${formatTimestamp(entry.timeNs)} ` : "";
      const bytes = Buffer.from(`${prefix}${entry.text}\n`);
      if (bytes.length >= untilDrop) {
        // Flush exactly the bytes allowed, then cut the connection without ending the body.
        res.write(bytes.subarray(0, untilDrop), () => res.socket?.destroy());
        return false;
      }
      untilDrop -= bytes.length;
      if (bytes.length >= budget) {
        res.end(bytes.subarray(0, budget));
        return false;
      }
      budget -= bytes.length;
      res.write(bytes);
      return true;
    };

    const entries = pod.logs(options.container);
    const start =
      options.tailLines === undefined ? 0 : Math.max(0, entries.length - options.tailLines);
    for (const entry of entries.slice(start)) if (!write(entry)) return;
    if (!options.follow || state.terminated) {
      res.end();
      return;
    }
    const follower: LogFollower = { res, container: options.container, write };
    pod.followers.add(follower);
    this.#track(res, "log", () => pod.followers.delete(follower));
  }

  #track(res: ServerResponse, kind: StreamKind, cleanup: () => void): void {
    this.#streams.set(res, kind);
    res.on("close", () => {
      this.#streams.delete(res);
      cleanup();
    });
  }

  #notifyWaiters(): void {
    for (const check of [...this.#requestWaiters]) check();
  }
}

/** One pod of the fake; every change goes through the server so watchers see it. */
export class FakePod {
  readonly namespace: string;
  readonly name: string;
  readonly key: string;
  resourceVersion = 0;
  readonly followers = new Set<LogFollower>();
  readonly #server: FakeKubernetes;
  readonly #uid = randomUUID();
  readonly #created = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  readonly #containers: string[];
  readonly #states = new Map<string, ContainerState>();
  readonly #logs = new Map<string, LogEntry[]>();

  constructor(server: FakeKubernetes, namespace: string, name: string, containers: string[]) {
    this.#server = server;
    this.namespace = namespace;
    this.name = name;
    this.key = `${namespace}/${name}`;
    this.#containers = containers;
    for (const c of containers) {
      this.#states.set(c, { running: { startedAt: this.#created } });
      this.#logs.set(c, []);
    }
  }

  start(container: string): void {
    this.#states.set(this.#known(container), { running: { startedAt: now() } });
    this.#server.changed(this, "MODIFIED");
  }

  wait(container: string, reason = "ContainerCreating"): void {
    this.#states.set(this.#known(container), { waiting: { reason } });
    this.#server.changed(this, "MODIFIED");
  }

  /** Terminates a container; its log followers end once they have sent every line. */
  terminate(container: string, t: { exitCode: number; reason?: string; message?: string }): void {
    const startedAt = this.state(container).running?.startedAt;
    const terminated = {
      exitCode: t.exitCode,
      reason: t.reason ?? (t.exitCode === 0 ? "Completed" : "Error"),
      ...(t.message ? { message: t.message } : {}),
      ...(startedAt ? { startedAt } : {}),
      finishedAt: now(),
      containerID: `containerd://${this.#uid.replaceAll("-", "")}${container}`,
    };
    this.#states.set(container, { terminated });
    this.#server.changed(this, "MODIFIED");
    for (const f of this.followers) if (f.container === container) f.res.end();
  }

  log(container: string, ...lines: string[]): void {
    for (const text of lines) this.#append(container, this.#server.nextLogTime(), text);
  }

  logAt(time: Date | bigint, container: string, ...lines: string[]): void {
    const ns = typeof time === "bigint" ? time : BigInt(time.getTime()) * 1_000_000n;
    for (const text of lines) this.#append(container, ns, text);
  }

  delete(): void {
    for (const f of this.followers) f.res.end();
    this.#server.changed(this, "DELETED");
  }

  state(container: string): ContainerState {
    return this.#states.get(this.#known(container)) as ContainerState;
  }

  logs(container: string): LogEntry[] {
    return this.#logs.get(this.#known(container)) as LogEntry[];
  }

  get containers(): readonly string[] {
    return this.#containers;
  }

  toJSON(): object {
    const statuses = this.#containers.map((name) => {
      const state = this.#states.get(name) as ContainerState;
      return {
        name,
        state,
        ready: Boolean(state.running),
        restartCount: 0,
        image: `example.test/${name}:1`,
        started: Boolean(state.running),
      };
    });
    return {
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name: this.name,
        namespace: this.namespace,
        uid: this.#uid,
        resourceVersion: `${this.resourceVersion}`,
        creationTimestamp: this.#created,
      },
      spec: {
        restartPolicy: "Never",
        containers: this.#containers.map((name) => ({ name, image: `example.test/${name}:1` })),
      },
      status: { phase: this.#phase(), startTime: this.#created, containerStatuses: statuses },
    };
  }

  #phase(): string {
    const states = [...this.#states.values()];
    if (states.some((s) => s.waiting)) return "Pending";
    if (!states.every((s) => s.terminated)) return "Running";
    return states.every((s) => s.terminated?.exitCode === 0) ? "Succeeded" : "Failed";
  }

  #append(container: string, timeNs: bigint, text: string): void {
    const entry = { timeNs, text };
    this.logs(container).push(entry);
    for (const f of this.followers) {
      if (f.container === container && !f.write(entry)) this.followers.delete(f);
    }
  }

  #known(container: string): string {
    if (!this.#states.has(container)) {
      throw new Error(`fake pod ${this.key} has no container "${container}"`);
    }
    return container;
  }
}

class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

const badRequest = (message: string) => new ApiError(400, "BadRequest", message);
const notFound = (message: string) => new ApiError(404, "NotFound", message);

/** A meta/v1 Status, the body of every API error. */
function status(code: number, reason: string, message: string) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
}

function sendJson(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Headers go out at once, as the API server flushes them before the first event. */
function startStream(res: ServerResponse, contentType: string): void {
  res.writeHead(200, { "content-type": contentType, "transfer-encoding": "chunked" });
  res.flushHeaders();
}

function writeEvent(res: ServerResponse, event: object): void {
  if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(event)}\n`);
}

function podFilter(namespace: string | undefined, selector: string | null) {
  let name: string | undefined;
  let ns = namespace;
  for (const term of (selector ?? "").split(",").filter(Boolean)) {
    const [field, value] = term.split(/==?/);
    if (field === "metadata.name") name = value;
    else if (field === "metadata.namespace") ns = value;
    else
      throw badRequest(
        `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
      );
  }
  return (pod: FakePod) => (!name || pod.name === name) && (!ns || pod.namespace === ns);
}

interface LogOptions {
  container: string;
  follow: boolean;
  timestamps: boolean;
  sinceNs?: bigint;
  tailLines?: number;
  limitBytes?: number;
}

function parseLogOptions(pod: FakePod, query: URLSearchParams): LogOptions {
  const container =
    query.get("container") ?? (pod.containers.length === 1 ? pod.containers[0] : "");
  if (!container) {
    throw badRequest(
      `a container name must be specified for pod ${pod.name}, choose one of: [${pod.containers.join(" ")}]`,
    );
  }
  if (!pod.containers.includes(container)) {
    throw badRequest(`container ${container} is not valid for pod ${pod.name}`);
  }
  const sinceTime = query.get("sinceTime");
  const sinceSeconds = positive(query, "sinceSeconds");
  if (sinceTime && sinceSeconds !== undefined) {
    throw badRequest("at most one of `sinceTime` or `sinceSeconds` may be specified");
  }
  let sinceNs = sinceTime ? parseRfc3339(sinceTime) : undefined;
  if (sinceSeconds !== undefined) sinceNs = BigInt(Date.now() - sinceSeconds * 1000) * 1_000_000n;
  const tail = query.get("tailLines");
  const tailLines = tail === null ? undefined : Number(tail);
  if (tailLines !== undefined && !(Number.isInteger(tailLines) && tailLines >= 0)) {
    throw badRequest(`tailLines: Invalid value: ${tail}: must be greater than or equal to 0`);
  }
  return {
    container,
    follow: query.get("follow") === "true",
    timestamps: query.get("timestamps") === "true",
    sinceNs,
    tailLines,
    limitBytes: positive(query, "limitBytes"),
  };
}

function positive(query: URLSearchParams, key: string): number | undefined {
  const text = query.get(key);
  if (text === null) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw badRequest(`${key}: Invalid value: ${text}: must be greater than 0`);
  }
  return value;
}

/** RFC 3339 with up to nanoseconds, to nanoseconds since the epoch. */
export function parseRfc3339(text: string): bigint {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(text);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : Number.NaN;
  if (!m || Number.isNaN(ms)) {
    throw badRequest(`sinceTime: Invalid value: "${text}": must be an RFC 3339 time`);
  }
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** The kubelet writes log timestamps as RFC3339Nano with all nine digits, in UTC. */
export function formatTimestamp(ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, "0");
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, `.${fraction}Z`);
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}
