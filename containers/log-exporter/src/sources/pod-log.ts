// The workload's stdout and stderr through the Kubernetes API's pod log stream:
// GET /api/v1/namespaces/{ns}/pods/{pod}/log?container=&follow=true&timestamps=true[&sinceTime=]
//
// Every line is prefixed with the kubelet's RFC3339Nano timestamp. A dropped stream is reopened
// from `sinceTime` = the last timestamp committed (or seen, within this run), and lines at or
// before what was already read are skipped, so a reconnect duplicates nothing. The follow ends
// once the container has terminated and its log is drained (kubelet `ReadLogs`); a stream that
// ends while the container still runs (log rotation, API server restart) is reopened.
//
// The committed position (timestamp and how many lines carried it) is kept in a small JSON file
// so a restarted exporter resumes where delivery stopped.
//
// undici is loaded at the first request (loadUndici): a job without a pod log source does not
// pay for it, and an elasticsearch sink alone needs no undici either (scripts/build.ts).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { loadUndici } from "@buildpod/runtime";
import type { Agent } from "undici";
import type { Envelope } from "../pipeline.ts";
import { decodeLine, type LogRecord, type Origin, originKey } from "../record.ts";
import { backoffDelay, sleep } from "../retry.ts";

export interface PodLogSourceOptions {
  apiUrl: string;
  tokenFile: string;
  caFile?: string;
  namespace: string;
  podName: string;
  container: string;
  /** The position file (`{ time, count }`), kept across restarts. */
  stateFile: string;
  jobKey: string;
  /** Lines longer than this are cut (flagged truncated). */
  maxLineBytes: number;
  /** Envelope size: lines are handed over at most this many at a time. */
  maxEnvelopeLines?: number;
  onRetry?(info: { attempt: number; delayMs: number; err: unknown }): void;
}

/** A position in the stream: the last timestamp and how many lines carried it. */
interface Position {
  time: string;
  count: number;
}

interface Cursor {
  skip: Position | undefined;
  local: Position | undefined;
}

/** The pod log stream as envelopes; ends after the container terminated and was drained. */
export class PodLogSource {
  readonly options: PodLogSourceOptions;
  readonly #origin: Origin;
  readonly #stop = new AbortController();
  #agent: Agent | undefined;
  /** Last line read (reconnects resume here). */
  #read: Position | undefined;
  #ordinal = 0;

  constructor(options: PodLogSourceOptions) {
    this.options = options;
    this.#origin = {
      key: originKey(options.jobKey, options.namespace, options.podName, options.container),
    };
  }

  /** Stops following at once (hard stop); `envelopes` ends. */
  stop(): void {
    this.#stop.abort();
  }

  async *envelopes(): AsyncGenerator<Envelope> {
    this.#read = loadPosition(this.options.stateFile);
    const signal = this.#stop.signal;
    for (let attempt = 1; !signal.aborted; ) {
      try {
        const ended = yield* this.#follow(signal);
        attempt = 1;
        if (ended === "terminated" || (await this.#terminated())) break;
      } catch (err) {
        if (signal.aborted) break;
        const delayMs = backoffDelay(attempt++, 200, 10_000);
        this.options.onRetry?.({ attempt, delayMs, err });
        await sleep(delayMs, signal).catch(() => undefined);
      }
    }
    await this.#agent?.close();
  }

  /** One follow request, read to its end. */
  async *#follow(signal: AbortSignal): AsyncGenerator<Envelope, "ended" | "terminated"> {
    const o = this.options;
    const query = new URLSearchParams({
      container: o.container,
      follow: "true",
      timestamps: "true",
    });
    if (this.#read) query.set("sinceTime", this.#read.time);
    const url = `${o.apiUrl.replace(/\/$/, "")}/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(o.podName)}/log?${query}`;
    const { request } = await loadUndici();
    const res = await request(url, {
      headers: await this.#headers(),
      dispatcher: await this.#dispatcher(),
      signal,
    });
    if (res.statusCode !== 200) {
      const text = (await res.body.text()).slice(0, 300);
      // 400 while the container is waiting (not started yet): retried like any failure.
      throw new Error(`could not open the pod log stream: HTTP ${res.statusCode}: ${text}`);
    }
    let rest: Buffer = Buffer.alloc(0);
    // `skip`: what an earlier connection (or run) already read; `local`: this stream's position.
    const cursor: Cursor = { skip: this.#read ? { ...this.#read } : undefined, local: undefined };
    for await (const chunk of res.body) {
      const data: Buffer =
        rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
      const records: LogRecord[] = [];
      let bytes = 0;
      let start = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
        const record = this.#line(data.subarray(start, nl), cursor);
        start = nl + 1;
        if (record === undefined) continue;
        records.push(record);
        bytes += record.message.length + 64;
      }
      rest = Buffer.from(data.subarray(start));
      if (records.length > 0) yield this.#envelope(records, bytes);
    }
    return "ended";
  }

  /** Parses `<timestamp> <message>`; undefined for a line already read before a reconnect. */
  #line(bytes: Buffer, cursor: Cursor): LogRecord | undefined {
    const space = bytes.indexOf(0x20);
    const timeText = bytes.subarray(0, space < 0 ? bytes.length : space).toString("latin1");
    const body = space < 0 ? Buffer.alloc(0) : bytes.subarray(space + 1);
    const count = cursor.local?.time === timeText ? cursor.local.count + 1 : 1;
    cursor.local = { time: timeText, count };
    const skip = cursor.skip;
    if (skip) {
      // The kubelet's timestamps are fixed-width UTC, so text order is time order.
      if (timeText < skip.time || (timeText === skip.time && count <= skip.count)) return undefined;
      cursor.skip = undefined;
    }
    this.#read = { time: timeText, count };
    const limited =
      body.length > this.options.maxLineBytes ? body.subarray(0, this.options.maxLineBytes) : body;
    const { message, flags } = decodeLine(limited);
    const time = Date.parse(timeText);
    const record: LogRecord = {
      origin: this.#origin,
      message,
      offset: this.#ordinal++,
      time: Number.isNaN(time) ? Date.now() : time,
      flags: limited === body ? flags : flags | 1,
      ...(Number.isNaN(time) ? {} : { timeText }),
    };
    // The id comes from the timestamp (and the line's rank within it), not the ordinal, so a
    // restarted exporter gives the same line the same id.
    record.id = `${this.#origin.key}-${timeText.replace(/[^0-9]/g, "")}-${count}`;
    return record;
  }

  #envelope(records: LogRecord[], bytes: number): Envelope {
    const position = this.#read ? { ...this.#read } : undefined;
    const stateFile = this.options.stateFile;
    return {
      records,
      bytes,
      commit: () => {
        if (position) savePosition(stateFile, position);
      },
    };
  }

  /** Whether the container has terminated (then the ended stream was complete). */
  async #terminated(): Promise<boolean> {
    const o = this.options;
    const url = `${o.apiUrl.replace(/\/$/, "")}/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(o.podName)}`;
    const { request } = await loadUndici();
    const res = await request(url, {
      headers: await this.#headers(),
      dispatcher: await this.#dispatcher(),
    });
    if (res.statusCode === 404) return true; // the pod is gone: nothing more will come
    const pod = (await res.body.json()) as {
      status?: { containerStatuses?: { name: string; state?: { terminated?: unknown } }[] };
    };
    const status = pod.status?.containerStatuses?.find((c) => c.name === o.container);
    return status?.state?.terminated !== undefined;
  }

  async #headers(): Promise<Record<string, string>> {
    // Re-read every time: the kubelet rotates projected service account tokens.
    const token = (await readFile(this.options.tokenFile, "utf8")).trim();
    return { authorization: `Bearer ${token}` };
  }

  async #dispatcher(): Promise<Agent> {
    if (!this.#agent) {
      const ca =
        this.options.caFile && this.options.apiUrl.startsWith("https:")
          ? await readFile(this.options.caFile, "utf8")
          : undefined;
      const { Agent } = await loadUndici();
      this.#agent = new Agent(ca ? { connect: { ca } } : {});
    }
    return this.#agent;
  }
}

function loadPosition(file: string): Position | undefined {
  try {
    const p = JSON.parse(readFileSync(file, "utf8")) as Position;
    return typeof p.time === "string" && typeof p.count === "number" ? p : undefined;
  } catch {
    return undefined;
  }
}

function savePosition(file: string, position: Position): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(position));
  // rename is atomic: a crash leaves the old or the new position, never half of one.
  renameSync(`${file}.tmp`, file);
}
