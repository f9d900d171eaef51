import { readFile } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import type { LifecycleLogger } from "./types.ts";

/** Where and how to reach the Kubernetes API, and which container of which pod to follow. */
export interface PodWatchTarget {
  /** `https://10.0.0.1:443`, or a loopback `http://` URL in tests. */
  apiUrl: string;
  /** The service account token; re-read before every connection, since kubelet rotates it. */
  tokenFile: string;
  /** The cluster CA bundle; used for `https:` URLs. */
  caFile?: string;
  namespace: string;
  podName: string;
  /** The workload container whose termination ends the job. */
  container: string;
}

export interface PodWatchOptions extends PodWatchTarget {
  onTerminated(termination: ContainerTermination): void;
  logger: LifecycleLogger;
  /** Reconnect delays: doubled per failed attempt from `initialMs` up to `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
}

/** `status.containerStatuses[].state.terminated` of the workload container. */
export interface ContainerTermination {
  exitCode: number;
  /** `Completed`, `Error`, `OOMKilled`, ... */
  reason?: string;
  message?: string;
  signal?: number;
}

// The few fields of the core/v1 objects read here.
interface Pod {
  metadata?: { resourceVersion?: string };
  status?: { containerStatuses?: ContainerStatus[] };
}
interface ContainerStatus {
  name: string;
  state?: { terminated?: ContainerTermination };
}
interface Status {
  code?: number;
  reason?: string;
  message?: string;
}
interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Pod & Status;
}

/** The API server refused a request; `statusCode` is the HTTP or watch ERROR event code. */
export class KubernetesApiError extends Error {
  readonly statusCode: number;
  constructor(message: string, statusCode: number) {
    super(message);
    this.name = "KubernetesApiError";
    this.statusCode = statusCode;
  }
}

/**
 * Follows one pod through the watch API until the workload container has terminated.
 *
 * The first connection watches without a resourceVersion, which the API server answers with a
 * synthetic ADDED event holding the pod's current state, then its changes ("Get State and
 * Start at Most Recent" in the API concepts docs). That needs only the `watch` verb, not
 * `list`. Later connections resume from the last resourceVersion seen in an event or
 * BOOKMARK. A 410 Gone, as an HTTP status or an ERROR event, means that version has been
 * compacted away: the next connection starts over without one, as client-go's reflector
 * relists. Every other failure reconnects after an exponential backoff.
 */
export class PodWatch {
  readonly #opts: PodWatchOptions;
  readonly #abort = new AbortController();
  readonly #done: Promise<void>;
  #agent: Agent | undefined;
  #resourceVersion: string | undefined;
  #failures = 0;

  constructor(opts: PodWatchOptions) {
    this.#opts = opts;
    this.#done = this.#run();
  }

  /** Stops watching and releases every socket. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
    await this.#agent?.destroy();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        if ((await this.#watchOnce()) === "terminated") return;
        // The server closes a watch after timeoutSeconds; reconnect at once, unless it keeps
        // closing immediately.
        if (Date.now() - started < 1000) this.#failures += 1;
      } catch (err) {
        if (signal.aborted) return;
        this.#failures += 1;
        this.#reportFailure(err);
        if (err instanceof KubernetesApiError && err.statusCode === 410) {
          this.#resourceVersion = undefined;
        }
      }
      if (this.#failures > 0) await this.#pause(this.#backoffMs());
    }
  }

  async #watchOnce(): Promise<"terminated" | "ended"> {
    const token = (await readFile(this.#opts.tokenFile, "utf8")).trim();
    const response = await request(this.#watchUrl(), {
      dispatcher: await this.#dispatcher(),
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      signal: this.#abort.signal,
    });
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => "");
      throw this.#apiError(response.statusCode, parseStatus(text));
    }
    for await (const line of splitLines(response.body)) {
      if (this.#handle(parseEvent(line))) return "terminated";
    }
    return "ended";
  }

  /** Returns true once the workload container has terminated. */
  #handle(event: WatchEvent): boolean {
    if (event.type === "ERROR") throw this.#apiError(event.object.code ?? 500, event.object);

    const version = event.object.metadata?.resourceVersion;
    if (version) this.#resourceVersion = version;
    if (event.type === "BOOKMARK") return false;

    this.#failures = 0;
    const status = event.object.status?.containerStatuses?.find(
      (s) => s.name === this.#opts.container,
    );
    const terminated = status?.state?.terminated;
    if (!terminated) return false;
    this.#opts.onTerminated(terminated);
    return true;
  }

  #watchUrl(): string {
    const { apiUrl, namespace, podName } = this.#opts;
    const query = new URLSearchParams({
      watch: "true",
      fieldSelector: `metadata.name=${podName}`,
      allowWatchBookmarks: "true",
      // client-go spreads its watch timeouts over 5 to 10 minutes so that reconnects of many
      // clients do not line up.
      timeoutSeconds: String(300 + Math.floor(Math.random() * 300)),
    });
    if (this.#resourceVersion) query.set("resourceVersion", this.#resourceVersion);
    const base = apiUrl.replace(/\/+$/, "");
    return `${base}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?${query}`;
  }

  async #dispatcher(): Promise<Agent> {
    if (this.#agent) return this.#agent;
    const { caFile, apiUrl } = this.#opts;
    let ca: Buffer | undefined;
    if (caFile && apiUrl.startsWith("https:")) {
      ca = await readFile(caFile).catch((err: Error) => {
        throw new Error(`could not read the cluster CA ${caFile}: ${err.message}`, { cause: err });
      });
    }
    // The body timeout must outlast the server-side watch timeout (at most 10 minutes); it
    // only fires on a connection that went silent without being closed.
    this.#agent = new Agent({ connect: { ca }, headersTimeout: 30_000, bodyTimeout: 660_000 });
    return this.#agent;
  }

  #apiError(statusCode: number, status: Status | undefined): KubernetesApiError {
    const { namespace, podName, tokenFile } = this.#opts;
    const what = `could not watch pod ${namespace}/${podName}`;
    const said = status?.message ? `: ${status.message}` : "";
    const hint =
      statusCode === 401
        ? `; check the service account token in ${tokenFile}`
        : statusCode === 403
          ? `; grant the pod's service account "watch" on pods in namespace ${namespace}`
          : "";
    return new KubernetesApiError(
      `${what}: API server answered ${statusCode}${said}${hint}`,
      statusCode,
    );
  }

  #reportFailure(err: unknown): void {
    const fields = { err, attempt: this.#failures };
    // An expired resourceVersion is routine after a long disconnect; everything else is not.
    if (err instanceof KubernetesApiError && err.statusCode === 410) {
      this.#opts.logger.info(fields, "pod watch expired; watching again from the current state");
      return;
    }
    this.#opts.logger.warn(fields, this.#describe(err));
  }

  #describe(err: unknown): string {
    if (err instanceof KubernetesApiError) return err.message;
    const { namespace, podName, apiUrl, caFile } = this.#opts;
    const what = `could not watch pod ${namespace}/${podName} at ${apiUrl}`;
    const code = (err as NodeJS.ErrnoException).code ?? "";
    // OpenSSL's verification codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, ...).
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return `${what}: the server's certificate was not accepted (${code}); check that ${caFile ?? "the CA file"} holds the cluster CA`;
    }
    const message = err instanceof Error ? err.message : String(err);
    return message.startsWith("could not") ? message : `${what}: ${message}`;
  }

  #backoffMs(): number {
    const { initialMs, maxMs } = this.#opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
    const base = Math.min(maxMs, initialMs * 2 ** (this.#failures - 1));
    // ±20 % jitter so that the sidecars of many pods do not reconnect in step.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  async #pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#abort.signal, ref: false });
    } catch {
      // Aborted by close().
    }
  }
}

function parseEvent(line: string): WatchEvent {
  let event: WatchEvent;
  try {
    event = JSON.parse(line) as WatchEvent;
  } catch (err) {
    throw new Error(`could not parse a watch event: ${(err as Error).message}`, { cause: err });
  }
  if (typeof event?.type !== "string" || typeof event.object !== "object") {
    throw new Error(`could not parse a watch event: no type and object in ${line.slice(0, 80)}`);
  }
  return event;
}

function parseStatus(text: string): Status | undefined {
  try {
    const status = JSON.parse(text) as Status;
    return typeof status === "object" && status ? status : undefined;
  } catch {
    return text ? { message: text.slice(0, 200) } : undefined;
  }
}

/** The API server writes one JSON object per line on a watch stream. */
async function* splitLines(body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  for await (const chunk of body) {
    pending += decoder.write(chunk);
    let end = pending.indexOf("\n");
    while (end >= 0) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (line) yield line;
      end = pending.indexOf("\n");
    }
  }
  const last = (pending + decoder.end()).trim();
  if (last) yield last;
}
