import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { StoreError } from "./errors.ts";
import { formBody } from "./form.ts";
import { createDispatcher, type HttpCall, type HttpSettings, send } from "./http.ts";
import { mapLimit } from "./limit.ts";
import { defaultRetry, type OnRetry, type RetryPolicy } from "./retry.ts";
import type {
  ArtifactStore,
  RemoteArtifact,
  SearchQuery,
  UploadResult,
  UploadSource,
} from "./types.ts";

/** The default API base; `BUILDKITE_AGENT_ENDPOINT` overrides it (reference §1). */
// The Buildkite agent's own default since 2026-04-09 (before: https://agent.buildkite.com/v3).
export const DEFAULT_ENDPOINT = "https://agent-edge.buildkite.com/v3";
/** Buildkite storage takes single requests up to 5 GiB (reference §1). */
export const SINGLE_UPLOAD_LIMIT = 5 * 1024 ** 3;
/** What a form `data` value or action path holds in place of the artifact's path. */
const PATH_PLACEHOLDER = ["$", "{artifact:path}"].join("");

export interface BuildkiteStoreOptions {
  /** API base URL, e.g. `https://agent-edge.buildkite.com/v3`. */
  endpoint: string;
  /** The job token, sent as `Authorization: Token <token>` to the API only, never to storage. */
  token: string;
  /** The job the uploads belong to (`BUILDKITE_JOB_ID`); needed only to upload. */
  jobId?: string;
  /** Bound of each API call and of each storage idle wait. Default 30 s. */
  timeoutMs?: number;
  retry?: RetryPolicy;
  onRetry?: OnRetry;
  /** Concurrent file transfers within one batch. Default 8. */
  concurrency?: number;
  /** Concurrent parts of one multipart upload. Default 4. */
  partConcurrency?: number;
  /** Offer multipart uploads (`multipart_supported`). Default true. */
  multipart?: boolean;
  /** Largest file sent as one form request. Default 5 GiB. */
  singleUploadLimit?: number;
  /**
   * What to do about a file above `singleUploadLimit` while `multipart` is off, for its error:
   * how the program's user turns parts back on. Default "turn multipart uploads on or split
   * the file".
   */
  noMultipartHint?: string;
  userAgent?: string;
}

/** Upload instructions as the batch create returns them (reference §1). */
interface Instructions {
  action?: { url: string; method: string; path?: string; file_input?: string };
  actions?: { url: string; method: string; part_number: number }[];
  data?: Record<string, string>;
}

interface CreateResponse {
  artifact_ids: string[];
  upload_instructions?: Instructions;
  per_artifact_instructions?: Record<string, Instructions>;
}

interface StateUpdate {
  id: string;
  state: "finished" | "error";
  multipart?: boolean;
  multipart_etags?: { part_number: number; etag: string }[];
}

/**
 * The Buildkite agent API as an artifact store: batch create, form or multipart upload to the
 * presigned storage the server names, state updates, search and download (reference §1–2).
 */
export class BuildkiteStore implements ArtifactStore {
  readonly name = "buildkite";
  private readonly o: Required<Omit<BuildkiteStoreOptions, "jobId" | "onRetry">> &
    BuildkiteStoreOptions;
  private readonly http: HttpSettings;
  /** Made at the first request, so that a store never used loads no HTTP client. */
  private dispatcher: Promise<Dispatcher> | undefined;

  constructor(options: BuildkiteStoreOptions) {
    if (!options.token) {
      throw new StoreError(
        "ARTIFACT_STORE_NO_TOKEN",
        "could not use the buildkite store: no token",
      );
    }
    try {
      new URL(options.endpoint);
    } catch (cause) {
      throw new StoreError(
        "ARTIFACT_STORE_BAD_ENDPOINT",
        `could not use the buildkite store: endpoint ${JSON.stringify(options.endpoint)} is not a URL; give one like ${DEFAULT_ENDPOINT}`,
        { cause },
      );
    }
    this.o = {
      timeoutMs: 30_000,
      retry: defaultRetry,
      concurrency: 8,
      partConcurrency: 4,
      multipart: true,
      singleUploadLimit: SINGLE_UPLOAD_LIMIT,
      noMultipartHint: "turn multipart uploads on or split the file",
      userAgent: "buildpod-artifact-store",
      ...definedOnly(options),
      token: options.token,
      endpoint: options.endpoint,
    };
    this.http = {
      timeoutMs: this.o.timeoutMs,
      retry: this.o.retry,
      onRetry: options.onRetry,
      userAgent: this.o.userAgent,
    };
  }

  private connections(): Promise<Dispatcher> {
    this.dispatcher ??= createDispatcher(Math.max(16, this.o.concurrency * this.o.partConcurrency));
    return this.dispatcher;
  }

  async uploadBatch(files: UploadSource[], signal?: AbortSignal): Promise<UploadResult[]> {
    const jobId = this.o.jobId;
    if (!jobId) {
      throw new StoreError("ARTIFACT_STORE_NO_JOB", "could not upload artifacts: no job ID given");
    }
    const tooBig = (f: UploadSource) => !this.o.multipart && f.size > this.o.singleUploadLimit;
    const results: UploadResult[] = files.filter(tooBig).map((f) => ({
      path: f.path,
      ok: false,
      retryable: false,
      error: tooBigError(
        f,
        this.o.singleUploadLimit,
        "multipart uploads are turned off",
        this.o.noMultipartHint,
      ),
    }));
    const sendable = files.filter((f) => !tooBig(f));
    if (sendable.length === 0) return results;

    let created: CreateResponse;
    try {
      created = await this.createBatch(jobId, sendable, signal);
    } catch (err) {
      return [...results, ...sendable.map((f) => failed(f.path, err))];
    }

    const outcomes = await mapLimit(sendable, this.o.concurrency, (file, i) =>
      this.transfer(file, created, i, signal),
    );
    try {
      await this.updateStates(
        jobId,
        outcomes.map((o) => o.update),
        signal,
      );
    } catch (err) {
      return [...results, ...outcomes.map((o) => failed(o.result.path, err, o.update.id))];
    }
    return [...results, ...outcomes.map((o) => o.result)];
  }

  /** POST jobs/{id}/artifacts; the batch's UUID makes retries of it idempotent. */
  private async createBatch(jobId: string, files: UploadSource[], signal?: AbortSignal) {
    const body = {
      id: randomUUID(),
      artifacts: files.map((f) => ({
        id: "",
        path: f.path,
        absolute_path: f.absolutePath,
        glob_path: f.path,
        file_size: f.size,
        sha1sum: f.sha1,
        sha256sum: f.sha256,
        job_id: jobId,
        created_at: "0001-01-01T00:00:00Z",
        content_type: f.contentType,
      })),
      ...(this.o.multipart ? { multipart_supported: true } : {}),
    };
    const res = await this.api("could not create artifacts", "POST", artifactsPath(jobId), {
      body,
      signal,
    });
    const created = res as CreateResponse;
    if (!Array.isArray(created?.artifact_ids) || created.artifact_ids.length !== files.length) {
      throw new StoreError(
        "ARTIFACT_STORE_BAD_RESPONSE",
        `could not create artifacts: the answer has ${created?.artifact_ids?.length ?? "no"} artifact_ids for ${files.length} files`,
      );
    }
    return created;
  }

  /** Uploads one file as instructed and says what state to report for it. */
  private async transfer(
    file: UploadSource,
    created: CreateResponse,
    index: number,
    signal?: AbortSignal,
  ): Promise<{ result: UploadResult; update: StateUpdate }> {
    const id = created.artifact_ids[index] as string;
    const own = created.per_artifact_instructions?.[id];
    const instructions = own ?? created.upload_instructions;
    try {
      if (!instructions) throw badInstructions(file, "no upload instructions");
      if (instructions.actions?.length) {
        const etags = await this.uploadParts(file, instructions, signal);
        const update: StateUpdate = {
          id,
          state: "finished",
          multipart: true,
          multipart_etags: etags,
        };
        return { result: { path: file.path, ok: true, artifactId: id, bytes: file.size }, update };
      }
      if (file.size > this.o.singleUploadLimit) {
        const why = "the server offered no multipart upload";
        throw tooBigError(file, this.o.singleUploadLimit, why, "split the file");
      }
      await this.uploadForm(file, instructions, signal);
      return {
        result: { path: file.path, ok: true, artifactId: id, bytes: file.size },
        update: { id, state: "finished" },
      };
    } catch (err) {
      return { result: failed(file.path, err, id), update: { id, state: "error" } };
    }
  }

  /** One multipart/form-data request: the `data` fields, then the file (reference §1). */
  private async uploadForm(file: UploadSource, ins: Instructions, signal?: AbortSignal) {
    const action = ins.action;
    if (!action?.url) throw badInstructions(file, "the form action has no url");
    const url = new URL(action.url);
    if (action.path) url.pathname = action.path.replaceAll(PATH_PLACEHOLDER, file.path);
    const fields = Object.entries(ins.data ?? {}).map(
      ([k, v]) => [k, v.replaceAll(PATH_PLACEHOLDER, file.path)] as [string, string],
    );
    const form = formBody(
      fields,
      {
        field: action.file_input || "file",
        filename: file.path,
        contentType: file.contentType,
        size: file.size,
      },
      file.content ?? (() => file.read(0, file.size)),
    );
    const res = await this.storage({
      what: `could not upload ${file.path}`,
      method: (action.method || "POST") as HttpCall["method"],
      url: url.toString(),
      headers: { "content-type": form.contentType, "content-length": String(form.length) },
      body: form.body,
      signal,
    });
    await res.body.dump();
  }

  /**
   * One raw PUT per action, sorted by part number, the file split into near-equal ranges with
   * the remainder bytes in the first parts (reference §1). Every answer must carry an ETag. One
   * failed part aborts the others.
   */
  private async uploadParts(file: UploadSource, ins: Instructions, signal?: AbortSignal) {
    const actions = [...(ins.actions ?? [])].sort((a, b) => a.part_number - b.part_number);
    const ranges = splitRanges(file.size, actions.length);
    const abort = new AbortController();
    const both = signal ? AbortSignal.any([signal, abort.signal]) : abort.signal;
    try {
      return await mapLimit(actions, this.o.partConcurrency, async (action, i) => {
        const [start, end] = ranges[i] as [number, number];
        const res = await this.storage({
          what: `could not upload part ${action.part_number} of ${file.path}`,
          method: (action.method || "PUT") as HttpCall["method"],
          url: action.url,
          headers: {
            "content-type": file.contentType,
            "content-length": String(end - start),
          },
          body: () => file.read(start, end),
          signal: both,
        });
        await res.body.dump();
        const etag = res.headers.etag;
        if (typeof etag !== "string" || etag === "") {
          throw badInstructions(file, `storage gave part ${action.part_number} no ETag`);
        }
        return { part_number: action.part_number, etag };
      });
    } catch (err) {
      abort.abort();
      throw err;
    }
  }

  /** PUT jobs/{id}/artifacts with every state of the batch at once. */
  private async updateStates(jobId: string, updates: StateUpdate[], signal?: AbortSignal) {
    await this.api("could not update artifact states", "PUT", artifactsPath(jobId), {
      body: { artifacts: updates },
      signal,
    });
  }

  async search(q: SearchQuery, signal?: AbortSignal): Promise<RemoteArtifact[]> {
    // Keys sorted, empty and false ones left out, `state=finished` always (reference §2).
    const params = new URLSearchParams();
    if (q.includeRetriedJobs) params.set("include_retried_jobs", "true");
    if (q.query) params.set("query", q.query);
    if (q.scope) params.set("scope", q.scope);
    params.set("state", "finished");
    const path = `builds/${escapeId(q.buildId)}/artifacts/search?${params}`;
    const what = `could not search artifacts matching ${JSON.stringify(q.query)} in build ${q.buildId}`;
    const found = await this.api(what, "GET", path, { signal });
    if (!Array.isArray(found)) {
      throw new StoreError("ARTIFACT_STORE_BAD_RESPONSE", `${what}: the answer is not a list`);
    }
    return found.map((a) => toRemote(a, what));
  }

  async open(artifact: RemoteArtifact, signal?: AbortSignal): Promise<Readable> {
    // A plain GET without the token, redirects followed to the storage (reference §2).
    const res = await this.storage({
      what: `could not download ${artifact.path}`,
      method: "GET",
      url: artifact.url,
      signal,
    });
    return res.body;
  }

  async close(): Promise<void> {
    await (await this.dispatcher)?.close();
  }

  private async api(
    what: string,
    method: HttpCall["method"],
    path: string,
    opts: { body?: unknown; signal?: AbortSignal },
  ): Promise<unknown> {
    const text = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const res = await send(await this.connections(), this.http, {
      what,
      method,
      url: joinUrl(this.o.endpoint, path),
      headers: {
        authorization: `Token ${this.o.token}`,
        accept: "application/json",
        "buildkite-timeout-milliseconds": String(this.o.timeoutMs),
        ...(text === undefined ? {} : { "content-type": "application/json" }),
      },
      body: text === undefined ? undefined : () => text,
      signal: opts.signal,
      totalTimeout: true,
    });
    const raw = await res.body.text();
    if (raw === "") return undefined;
    try {
      return JSON.parse(raw);
    } catch (cause) {
      throw new StoreError("ARTIFACT_STORE_BAD_RESPONSE", `${what}: the answer is not JSON`, {
        cause,
      });
    }
  }

  /**
   * Storage requests carry no Buildkite auth. A 403 there is an expired presigned URL: a new
   * batch brings fresh ones, so the file is worth trying again later.
   */
  private async storage(call: HttpCall): Promise<Dispatcher.ResponseData> {
    try {
      return await send(await this.connections(), this.http, call);
    } catch (err) {
      if (err instanceof StoreError && err.status === 403) {
        throw new StoreError(err.code, err.message, { retryable: true, status: 403, cause: err });
      }
      throw err;
    }
  }
}

/** The entries that are not undefined, so that they do not override defaults when spread. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Exactly one `/` between the base and the path (reference §1). */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

/** Path-escapes an ID, `.` included, as the agent does (reference §1). */
export function escapeId(id: string): string {
  return encodeURIComponent(id).replaceAll(".", "%2E");
}

function artifactsPath(jobId: string): string {
  return `jobs/${escapeId(jobId)}/artifacts`;
}

/** Byte ranges [start, end) of `count` near-equal parts, remainder bytes to the first parts. */
export function splitRanges(size: number, count: number): [number, number][] {
  const base = Math.floor(size / count);
  const extra = size % count;
  const ranges: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const length = base + (i < extra ? 1 : 0);
    ranges.push([start, start + length]);
    start += length;
  }
  return ranges;
}

function failed(path: string, err: unknown, artifactId?: string): UploadResult {
  const error = err instanceof Error ? err : new Error(String(err));
  const retryable = err instanceof StoreError ? err.retryable : error.name !== "AbortError";
  return { path, ok: false, artifactId, error, retryable };
}

function tooBigError(file: UploadSource, limit: number, why: string, hint: string): StoreError {
  return new StoreError(
    "ARTIFACT_STORE_TOO_LARGE",
    `could not upload ${file.path}: it is ${file.size} bytes, above the single-request limit of ${limit} bytes, and ${why}; ${hint}`,
  );
}

function badInstructions(file: UploadSource, why: string): StoreError {
  return new StoreError("ARTIFACT_STORE_BAD_RESPONSE", `could not upload ${file.path}: ${why}`);
}

function toRemote(raw: unknown, what: string): RemoteArtifact {
  const a = raw as Record<string, unknown>;
  if (typeof a?.id !== "string" || typeof a.path !== "string" || typeof a.url !== "string") {
    throw new StoreError(
      "ARTIFACT_STORE_BAD_RESPONSE",
      `${what}: a result lacks its id, path or url`,
    );
  }
  return {
    id: a.id,
    path: a.path,
    fileSize: Number(a.file_size ?? 0),
    sha1sum: String(a.sha1sum ?? ""),
    sha256sum: String(a.sha256sum ?? ""),
    jobId: String(a.job_id ?? ""),
    createdAt: String(a.created_at ?? ""),
    url: a.url,
    contentType: String(a.content_type ?? ""),
  };
}
