/**
 * A fake Buildkite agent API and its artifact storage, on loopback, for tests and benchmarks.
 *
 * It speaks the wire protocol described in shared/reference/buildkite-agent-api.md §1–3: what a
 * real job token can do against `/v3`, plus an S3-like storage server on a second port that
 * takes presigned form POSTs and part PUTs and serves downloads. Nothing is mocked: clients talk
 * HTTP to it exactly as they would to agent.buildkite.com.
 *
 * Start and stop:
 *   const bk = await startFakeBuildkite({ token: "bkaj_x" });
 *   bk.endpoint        // "http://127.0.0.1:<port>/v3", what BUILDKITE_AGENT_ENDPOINT would hold
 *   bk.token, bk.jobId, bk.buildId   // a default job "running" in a default build
 *   await bk.close()   // closes both servers, destroys open sockets, deletes its data dir
 *
 * Jobs and tokens:
 *   Every /v3 request except artifact downloads needs `Authorization: Token <bk.token>`; anything
 *   else gets 401 with a JSON `message`. `bk.addJob({ id, buildId, stepKey, label, retried })`
 *   adds a job; `bk.setJobState(id, "canceling")` changes what `GET /v3/jobs/{id}` returns
 *   (`{"state": ...}`); unknown jobs get 404.
 *
 * Endpoints (API server, all under /v3):
 *   GET  jobs/{id}                      {"state"}
 *   POST jobs/{id}/chunks?sequence=&offset=&size=   gzip log chunk; kept in bk.chunks
 *   POST jobs/{id}/artifacts            batch create; idempotent on the body's `id`. Answers
 *        `artifact_ids` in request order, a form `upload_instructions` template whose `data.key`
 *        holds a literal `${artifact:path}`, and, when the request says `multipart_supported` and
 *        a file is at least `multipartThreshold` bytes, `per_artifact_instructions` with one PUT
 *        action per part (`partSize` bytes each, near-equal split, remainder to the first parts).
 *   PUT  jobs/{id}/artifacts            state updates: `finished` (multipart ones with
 *        `multipart_etags`, checked against the parts received) or `error`
 *   GET  builds/{id}/artifacts/search?query=&scope=&state=&include_retried_jobs=
 *        glob `query` (picomatch, `**` crosses `/`), `scope` = step key, label or job id,
 *        `state` filter, retried jobs' artifacts only with include_retried_jobs=true.
 *        Duplicates (one path, several artifacts) are all returned, oldest first.
 *   GET  artifacts/{id}/download        no auth; 302 to a presigned storage URL
 *
 * Storage server (no Buildkite auth; a request carrying `Authorization` gets 400, as S3 refuses
 * two auth mechanisms). Presigned URLs and form policies expire after `presignTtlMs`; an expired
 * or tampered one gets 403.
 *   POST /form                          multipart/form-data: every `data` field, the file last
 *   PUT  /parts/{uploadId}/{n}?expires=&signature=   raw part body; answers an `ETag` header
 *   GET  /objects/{key}?expires=&signature=          the stored bytes
 *
 * Stored bytes: `await bk.read(artifact)`. With `keepParts: false` multipart bytes are checked
 * and dropped (for 1 GiB tests), so their sums are empty.
 *
 * Seeding for downloads: `bk.seedArtifact({ path, content, jobId?, sha256sum?, sha1sum? })` stores
 * an object and a finished artifact (give a wrong checksum to test verification, or a path with
 * `..` to test containment).
 *
 * Fault injection (applied in the order added, each to the next `count` matching requests):
 *   bk.inject({ kind: "status", status: 503, count: 2 })          answer 503 (JSON `message`)
 *   bk.inject({ kind: "status", status: 429, retryAfter: 1 })      with a Retry-After header
 *   bk.inject({ kind: "stall", count: 1, ms: 5000 })               hold the request, then serve it
 *   bk.inject({ kind: "stall" })                                   hold it until close()
 *   bk.inject({ kind: "drop", count: 3 })                          destroy the connection
 *   match: { server: "api" | "storage", method: "PUT", path: /artifacts$/ } narrows any fault.
 *   bk.down(30_000, "api")   every connection to that server is dropped for 30 s
 *   bk.clearFaults()         forget the faults not fired yet
 *
 * Inspection: bk.artifacts (all artifacts with `state` and the `stored` bytes' size and sums),
 * bk.requests (server, method, path, status, whether `Authorization` was sent), bk.chunks.
 */
import { createHash, createHmac, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { gunzipSync } from "node:zlib";
import busboy from "busboy";
import picomatch from "picomatch";

export interface FakeJob {
  id: string;
  buildId: string;
  stepKey?: string;
  label?: string;
  /** A job that was retried: its artifacts show only with include_retried_jobs=true. */
  retried?: boolean;
  state: string;
}

/**
 * Facts about bytes the storage server received. Small objects are kept in memory (`bytes`),
 * big ones in a file; multipart objects with `keepParts: false` keep neither (sums empty).
 */
export interface StoredObject {
  size: number;
  sha1: string;
  sha256: string;
  file?: string;
  bytes?: Buffer;
}

export interface FakeArtifact {
  id: string;
  jobId: string;
  buildId: string;
  batchId: string;
  path: string;
  absolute_path: string;
  glob_path: string;
  file_size: number;
  sha1sum: string;
  sha256sum: string;
  content_type: string;
  created_at: string;
  state: "new" | "finished" | "error";
  key: string;
  multipart?: { uploadId: string; parts: number[] };
  stored?: StoredObject;
  /** How often a finished state was reported for it (a re-upload makes a new artifact). */
  finishedReports: number;
}

export interface FaultMatch {
  server?: "api" | "storage";
  method?: string;
  path?: string | RegExp;
}

export type Fault =
  | { kind: "status"; status: number; count?: number; retryAfter?: number; match?: FaultMatch }
  | { kind: "stall"; count?: number; ms?: number; match?: FaultMatch }
  | { kind: "drop"; count?: number; match?: FaultMatch };

export interface RecordedRequest {
  server: "api" | "storage";
  method: string;
  path: string;
  status: number;
  authorization: boolean;
  fault?: Fault["kind"];
}

export interface FakeBuildkiteOptions {
  token?: string;
  /** Lifetime of presigned URLs and form policies. Default 15 minutes. */
  presignTtlMs?: number;
  /** Files at least this big get multipart instructions when the client supports them. */
  multipartThreshold?: number;
  /** Target part size for multipart uploads. */
  partSize?: number;
  /** The storage's single-request (form POST) limit; bigger bodies get 400 EntityTooLarge. */
  maxFormUploadBytes?: number;
  /** Where stored objects go; default a fresh temp dir deleted by close(). */
  dataDir?: string;
  /**
   * Keep multipart bytes and assemble them at completion (default). With false, parts are only
   * checked (size, ETag = MD5) and dropped: for big uploads where the sums are not needed.
   */
  keepParts?: boolean;
}

/** Objects up to this size are kept in memory rather than in files. */
const IN_MEMORY_LIMIT = 1024 * 1024;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void>;

/** What the client replaces with each artifact's path in form `data` (reference §1). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: the literal placeholder is the protocol
const PATH_PLACEHOLDER = "${artifact:path}";
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export class FakeBuildkite {
  readonly token: string;
  readonly jobId: string;
  readonly buildId: string;
  endpoint = "";
  storageUrl = "";
  presignTtlMs: number;
  multipartThreshold: number;
  partSize: number;
  maxFormUploadBytes: number;
  keepParts: boolean;

  readonly jobs = new Map<string, FakeJob>();
  readonly artifacts: FakeArtifact[] = [];
  readonly requests: RecordedRequest[] = [];
  readonly chunks: { jobId: string; sequence: number; offset: number; text: string }[] = [];

  /** `artifacts` by id and multipart uploads by id: lookups per request stay O(1). */
  private readonly byId = new Map<string, FakeArtifact>();
  private readonly byUpload = new Map<string, FakeArtifact>();
  private readonly batches = new Map<string, unknown>();
  private readonly parts = new Map<string, Map<number, { etag: string; file: string }>>();
  private readonly faults: (Fault & { left: number })[] = [];
  private readonly downUntil = { api: 0, storage: 0 };
  private readonly secret = randomUUID();
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<http.ServerResponse>();
  private api!: http.Server;
  private storage!: http.Server;
  dataDir = "";
  private ownsDataDir = false;

  constructor(options: FakeBuildkiteOptions = {}) {
    this.token = options.token ?? "bkaj_fake-job-token";
    this.presignTtlMs = options.presignTtlMs ?? 15 * 60_000;
    this.multipartThreshold = options.multipartThreshold ?? 64 * MiB;
    this.partSize = options.partSize ?? 64 * MiB;
    this.maxFormUploadBytes = options.maxFormUploadBytes ?? 5 * GiB;
    this.dataDir = options.dataDir ?? "";
    this.keepParts = options.keepParts ?? true;
    this.jobId = randomUUID();
    this.buildId = randomUUID();
    this.addJob({
      id: this.jobId,
      buildId: this.buildId,
      stepKey: "build",
      label: ":hammer: build",
    });
  }

  /** Adds a job (state "running" unless given) and returns it. */
  addJob(job: Omit<FakeJob, "state"> & { state?: string }): FakeJob {
    const full = { state: "running", ...job };
    this.jobs.set(job.id, full);
    return full;
  }

  setJobState(id: string, state: string): void {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`fake buildkite: no job ${id}`);
    job.state = state;
  }

  /** Queues a fault for the next `count` (default 1) matching requests. */
  inject(fault: Fault): void {
    this.faults.push({ ...fault, left: fault.count ?? 1 });
  }

  /** Forgets every queued fault that has not fired yet. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Drops every connection to the server(s) for `ms`, as if the host were unreachable. */
  down(ms: number, which: "api" | "storage" | "all" = "all"): void {
    const until = Date.now() + ms;
    if (which !== "storage") this.downUntil.api = until;
    if (which !== "api") this.downUntil.storage = until;
    if (which !== "storage") this.api.closeAllConnections();
    if (which !== "api") this.storage.closeAllConnections();
  }

  /** Stores `content` and a finished artifact for it, as if a job had uploaded it. */
  async seedArtifact(a: {
    path: string;
    content: string | Buffer;
    jobId?: string;
    sha1sum?: string;
    sha256sum?: string;
    createdAt?: Date;
    contentType?: string;
  }): Promise<FakeArtifact> {
    const job = this.jobs.get(a.jobId ?? this.jobId);
    if (!job) throw new Error(`fake buildkite: no job ${a.jobId}`);
    const body = typeof a.content === "string" ? Buffer.from(a.content) : a.content;
    const id = randomUUID();
    const sha1 = createHash("sha1").update(body).digest("hex");
    const sha256 = createHash("sha256").update(body).digest("hex");
    const artifact: FakeArtifact = {
      id,
      jobId: job.id,
      buildId: job.buildId,
      batchId: "seed",
      path: a.path,
      absolute_path: `/workspace/${a.path}`,
      glob_path: a.path,
      file_size: body.length,
      sha1sum: a.sha1sum ?? sha1,
      sha256sum: a.sha256sum ?? sha256,
      content_type: a.contentType ?? "application/octet-stream",
      created_at: (a.createdAt ?? new Date()).toISOString(),
      state: "finished",
      key: `seed/${id}`,
      stored: { size: body.length, sha1, sha256, bytes: body },
      finishedReports: 1,
    };
    this.artifacts.push(artifact);
    this.byId.set(artifact.id, artifact);
    return artifact;
  }

  /** The bytes stored for an artifact. */
  async read(a: FakeArtifact): Promise<Buffer> {
    if (a.stored?.bytes) return a.stored.bytes;
    if (a.stored?.file) return readFile(a.stored.file);
    throw new Error(`fake buildkite: no bytes kept for ${a.path}`);
  }

  /** Finished artifacts of the default (or given) job, by path. */
  finished(jobId = this.jobId): Map<string, FakeArtifact> {
    const out = new Map<string, FakeArtifact>();
    for (const a of this.artifacts) {
      if (a.jobId === jobId && a.state === "finished") out.set(a.path, a);
    }
    return out;
  }

  async start(): Promise<this> {
    if (!this.dataDir) {
      this.dataDir = await mkdtemp(join(tmpdir(), "fake-buildkite-"));
      this.ownsDataDir = true;
    }
    await mkdir(join(this.dataDir, "objects"), { recursive: true });
    await mkdir(join(this.dataDir, "parts"), { recursive: true });
    this.api = this.serve("api", (req, res, url) => this.routeApi(req, res, url));
    this.storage = this.serve("storage", (req, res, url) => this.routeStorage(req, res, url));
    const apiPort = await listen(this.api);
    const storagePort = await listen(this.storage);
    this.endpoint = `http://127.0.0.1:${apiPort}/v3`;
    this.storageUrl = `http://127.0.0.1:${storagePort}`;
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.stalled) res.destroy();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([closeServer(this.api), closeServer(this.storage)]);
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private serve(name: "api" | "storage", route: Handler): http.Server {
    const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      void this.handle(name, route, req, res);
    });
    server.on("connection", (socket) => {
      if (Date.now() < this.downUntil[name]) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    return server;
  }

  private async handle(
    name: "api" | "storage",
    route: Handler,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const record: RecordedRequest = {
      server: name,
      method: req.method ?? "GET",
      path: url.pathname,
      status: 0,
      authorization: req.headers.authorization !== undefined,
    };
    this.requests.push(record);
    res.on("finish", () => {
      record.status = res.statusCode;
    });
    if (Date.now() < this.downUntil[name]) {
      req.socket.destroy();
      return;
    }
    const fault = this.takeFault(name, record);
    if (fault) {
      record.fault = fault.kind;
      if (fault.kind === "drop") {
        req.socket.destroy();
        return;
      }
      if (fault.kind === "status") {
        if (fault.retryAfter !== undefined) res.setHeader("Retry-After", String(fault.retryAfter));
        req.resume();
        return sendJson(res, fault.status, { message: `injected ${fault.status}` });
      }
      this.stalled.add(res);
      if (fault.ms === undefined) return;
      await sleep(fault.ms);
      this.stalled.delete(res);
      if (res.destroyed) return;
    }
    try {
      await route(req, res, url);
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { message: `fake buildkite: ${String(err)}` });
      else res.destroy();
    }
  }

  private takeFault(name: "api" | "storage", r: RecordedRequest): Fault | undefined {
    for (const f of this.faults) {
      if (f.left <= 0) continue;
      const m = f.match;
      if (m?.server && m.server !== name) continue;
      if (m?.method && m.method !== r.method) continue;
      if (m?.path && !(typeof m.path === "string" ? r.path === m.path : m.path.test(r.path))) {
        continue;
      }
      f.left--;
      return f;
    }
    return undefined;
  }

  // ---- API server -----------------------------------------------------------------------------

  private async routeApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== "v3") return sendJson(res, 404, { message: "not found" });
    const [, kind, id, sub] = parts;

    // Downloads are plain GETs of the artifact's `url`, sent without the job token.
    if (kind === "artifacts" && sub === "download" && req.method === "GET") {
      return this.redirectDownload(res, id);
    }
    if (req.headers.authorization !== `Token ${this.token}`) {
      req.resume();
      return sendJson(res, 401, { message: "invalid or missing job token" });
    }
    if (kind === "jobs" && id !== undefined) {
      const job = this.jobs.get(id);
      if (!job) return sendJson(res, 404, { message: `no job ${id}` });
      if (sub === undefined && req.method === "GET")
        return sendJson(res, 200, { state: job.state });
      if (sub === "artifacts" && req.method === "POST") return this.createBatch(req, res, job);
      if (sub === "artifacts" && req.method === "PUT") return this.updateStates(req, res, job);
      if (sub === "chunks" && req.method === "POST") return this.chunk(req, res, job, url);
    }
    if (kind === "builds" && sub === "artifacts" && parts[4] === "search") {
      return this.search(res, id, url.searchParams);
    }
    req.resume();
    sendJson(res, 404, { message: `no route for ${req.method} ${url.pathname}` });
  }

  private async createBatch(req: http.IncomingMessage, res: http.ServerResponse, job: FakeJob) {
    const body = (await readJson(req)) as {
      id?: string;
      artifacts?: Record<string, unknown>[];
      multipart_supported?: boolean;
    };
    if (!body || typeof body.id !== "string" || !Array.isArray(body.artifacts)) {
      return sendJson(res, 422, { message: "body needs a batch `id` and an `artifacts` array" });
    }
    const seen = this.batches.get(body.id);
    if (seen) return sendJson(res, 201, seen);
    const problem = body.artifacts.map(checkArtifactInput).find(Boolean);
    if (problem) return sendJson(res, 422, { message: problem });

    const expires = this.expiry();
    const prefix = `${job.id}/${body.id}`;
    const response = {
      id: body.id,
      artifact_ids: [] as string[],
      upload_instructions: {
        action: { url: this.storageUrl, method: "POST", path: "form", file_input: "file" },
        data: {
          key: `${prefix}/${PATH_PLACEHOLDER}`,
          expires: String(expires),
          signature: this.sign("POST", `form:${prefix}`, expires),
          "Content-Type": "binary/octet-stream",
        },
      },
      per_artifact_instructions: {} as Record<string, unknown>,
    };
    for (const input of body.artifacts) {
      const a = this.newArtifact(job, body.id, prefix, input);
      response.artifact_ids.push(a.id);
      if (body.multipart_supported && a.file_size >= this.multipartThreshold) {
        response.per_artifact_instructions[a.id] = this.multipartInstructions(a, expires);
      }
    }
    this.batches.set(body.id, response);
    sendJson(res, 201, response);
  }

  private newArtifact(
    job: FakeJob,
    batchId: string,
    prefix: string,
    input: Record<string, unknown>,
  ): FakeArtifact {
    const path = String(input.path);
    const a: FakeArtifact = {
      id: randomUUID(),
      jobId: job.id,
      buildId: job.buildId,
      batchId,
      path,
      absolute_path: String(input.absolute_path ?? ""),
      glob_path: String(input.glob_path ?? ""),
      file_size: Number(input.file_size),
      sha1sum: String(input.sha1sum ?? ""),
      sha256sum: String(input.sha256sum ?? ""),
      content_type: String(input.content_type ?? "binary/octet-stream"),
      created_at: new Date().toISOString(),
      state: "new",
      key: `${prefix}/${path}`,
      finishedReports: 0,
    };
    this.artifacts.push(a);
    this.byId.set(a.id, a);
    return a;
  }

  private multipartInstructions(a: FakeArtifact, expires: number) {
    const count = Math.max(1, Math.ceil(a.file_size / this.partSize));
    const uploadId = randomUUID();
    a.multipart = { uploadId, parts: splitSizes(a.file_size, count) };
    this.byUpload.set(uploadId, a);
    this.parts.set(uploadId, new Map());
    const actions = a.multipart.parts.map((_, i) => {
      const path = `/parts/${uploadId}/${i + 1}`;
      const query = `expires=${expires}&signature=${this.sign("PUT", path, expires)}`;
      return { url: `${this.storageUrl}${path}?${query}`, method: "PUT", part_number: i + 1 };
    });
    return { actions, data: {} };
  }

  private async updateStates(req: http.IncomingMessage, res: http.ServerResponse, job: FakeJob) {
    const body = (await readJson(req)) as { artifacts?: Record<string, unknown>[] };
    if (!Array.isArray(body?.artifacts)) {
      return sendJson(res, 422, { message: "body needs an `artifacts` array" });
    }
    for (const update of body.artifacts) {
      const found = this.byId.get(String(update.id));
      const a = found?.jobId === job.id ? found : undefined;
      if (!a) return sendJson(res, 404, { message: `no artifact ${String(update.id)}` });
      if (update.state === "error") {
        a.state = "error";
        continue;
      }
      if (update.state !== "finished") {
        return sendJson(res, 422, { message: `state must be finished or error` });
      }
      const problem = a.multipart
        ? await this.completeMultipart(a, update.multipart_etags)
        : await this.checkFormObject(a);
      if (problem) return sendJson(res, 422, { message: problem });
      a.state = "finished";
      a.finishedReports++;
    }
    sendJson(res, 200, {});
  }

  private async checkFormObject(a: FakeArtifact): Promise<string | undefined> {
    if (!a.stored) {
      a.stored = this.storedByKey.get(a.key);
      if (!a.stored) return `artifact ${a.path} was reported finished but never uploaded`;
    }
    return undefined;
  }

  private async completeMultipart(a: FakeArtifact, etags: unknown): Promise<string | undefined> {
    if (a.stored) return undefined;
    const mp = a.multipart as NonNullable<FakeArtifact["multipart"]>;
    const got = this.parts.get(mp.uploadId) ?? new Map();
    const list = Array.isArray(etags) ? (etags as { part_number: number; etag: string }[]) : [];
    if (list.length !== mp.parts.length) {
      return `multipart_etags has ${list.length} parts, expected ${mp.parts.length}`;
    }
    for (const [i, e] of list.entries()) {
      if (e.part_number !== i + 1) return "multipart_etags must be sorted by part_number";
      if (got.get(e.part_number)?.etag !== e.etag) return `etag of part ${e.part_number} differs`;
    }
    if (!this.keepParts) {
      a.stored = { size: mp.parts.reduce((x, y) => x + y, 0), sha1: "", sha256: "" };
      return undefined;
    }
    const file = join(this.dataDir, "objects", a.id);
    const sums = hashing();
    const files = list.map((e) => (got.get(e.part_number) as { file: string }).file);
    await pipeline(
      async function* () {
        for (const f of files) yield* createReadStream(f);
      },
      sums.tap(),
      createWriteStream(file),
    );
    for (const f of files) await rm(f, { force: true });
    a.stored = { ...sums.result(), file };
    return undefined;
  }

  private async chunk(req: http.IncomingMessage, res: http.ServerResponse, job: FakeJob, url: URL) {
    const raw = await readBody(req);
    const text = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
    this.chunks.push({
      jobId: job.id,
      sequence: Number(url.searchParams.get("sequence")),
      offset: Number(url.searchParams.get("offset")),
      text: text.toString("utf8"),
    });
    sendJson(res, 201, {});
  }

  private search(res: http.ServerResponse, buildId: string, q: URLSearchParams) {
    const query = q.get("query");
    const isMatch = query ? picomatch(query, { dot: true, flags: "s" }) : () => true;
    const scope = q.get("scope");
    const state = q.get("state");
    const retried = q.get("include_retried_jobs") === "true";
    const found = this.artifacts.filter((a) => {
      const job = this.jobs.get(a.jobId) as FakeJob;
      if (a.buildId !== buildId) return false;
      if (state && a.state !== state) return false;
      if (job.retried && !retried) return false;
      if (scope && ![job.id, job.stepKey, job.label].includes(scope)) return false;
      return isMatch(a.path);
    });
    found.sort((x, y) => x.created_at.localeCompare(y.created_at));
    sendJson(
      res,
      200,
      found.map((a) => this.publicArtifact(a)),
    );
  }

  private publicArtifact(a: FakeArtifact) {
    return {
      id: a.id,
      path: a.path,
      absolute_path: a.absolute_path,
      glob_path: a.glob_path,
      file_size: a.file_size,
      sha1sum: a.sha1sum,
      sha256sum: a.sha256sum,
      job_id: a.jobId,
      created_at: a.created_at,
      url: `${this.endpoint}/artifacts/${encodeURIComponent(a.id)}/download`,
      upload_destination: "",
      content_type: a.content_type,
      state: a.state,
    };
  }

  private redirectDownload(res: http.ServerResponse, id: string) {
    const a = this.byId.get(id);
    if (!a?.stored) return sendJson(res, 404, { message: `no artifact ${id}` });
    const expires = this.expiry();
    const path = `/objects/${encodeURIComponent(a.id)}`;
    const location = `${this.storageUrl}${path}?expires=${expires}&signature=${this.sign("GET", path, expires)}`;
    res.writeHead(302, { location, "content-length": 0 }).end();
  }

  // ---- storage server -------------------------------------------------------------------------

  private readonly storedByKey = new Map<string, StoredObject>();

  private async routeStorage(req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
    if (req.headers.authorization !== undefined) {
      req.resume();
      return sendXml(res, 400, "InvalidArgument", "only one auth mechanism allowed");
    }
    if (req.method === "POST" && url.pathname === "/form") return this.formUpload(req, res);
    const parts = url.pathname.split("/").filter(Boolean);
    if (req.method === "PUT" && parts[0] === "parts") return this.partUpload(req, res, url, parts);
    if (req.method === "GET" && parts[0] === "objects") return this.serveObject(res, url, parts);
    req.resume();
    sendXml(res, 404, "NoSuchKey", "not found");
  }

  private async formUpload(req: http.IncomingMessage, res: http.ServerResponse) {
    const length = Number(req.headers["content-length"]);
    if (!Number.isFinite(length)) {
      req.resume();
      return sendXml(res, 411, "MissingContentLength", "content-length is required");
    }
    if (length > this.maxFormUploadBytes) {
      req.resume();
      return sendXml(res, 400, "EntityTooLarge", "upload exceeds the maximum allowed size");
    }
    const fields: Record<string, string> = {};
    let stored: Promise<StoredObject> | undefined;
    let fieldAfterFile = false;
    const bb = busboy({ headers: req.headers, limits: { fieldSize: 1 * MiB } });
    bb.on("field", (name, value) => {
      if (stored) fieldAfterFile = true;
      fields[name] = value;
    });
    bb.on("file", (name, stream) => {
      if (name !== "file") {
        stream.resume();
        return;
      }
      const sums = hashing();
      if (length <= IN_MEMORY_LIMIT) {
        stored = collect(stream, sums);
        stored.catch(() => {}); // a form that fails to parse is answered 400 without it
        return;
      }
      const file = join(this.dataDir, "objects", randomUUID());
      stored = pipeline(stream, sums.tap(), createWriteStream(file)).then(() => ({
        ...sums.result(),
        file,
      }));
    });
    try {
      await feed(req, bb);
    } catch (err) {
      return sendXml(res, 400, "MalformedPOSTRequest", `could not parse form: ${String(err)}`);
    }
    const key = fields.key ?? "";
    const prefix = key.split("/").slice(0, 2).join("/");
    if (!this.verify("POST", `form:${prefix}`, fields.expires, fields.signature)) {
      return sendXml(res, 403, "AccessDenied", "policy expired or signature does not match");
    }
    if (!stored || fieldAfterFile) {
      return sendXml(res, 400, "InvalidArgument", "the file must be the last field of the form");
    }
    if (key.includes(PATH_PLACEHOLDER)) {
      return sendXml(res, 400, "InvalidArgument", `key still holds ${PATH_PLACEHOLDER}`);
    }
    this.storedByKey.set(key, await stored);
    res.writeHead(204).end();
  }

  private async partUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    parts: string[],
  ) {
    const [, uploadId, n] = parts;
    const q = url.searchParams;
    if (!this.verify("PUT", url.pathname, q.get("expires"), q.get("signature"))) {
      req.resume();
      return sendXml(res, 403, "AccessDenied", "request has expired or signature does not match");
    }
    const artifact = this.byUpload.get(uploadId ?? "");
    const expected = artifact?.multipart?.parts[Number(n) - 1];
    const received = this.parts.get(uploadId);
    if (!artifact || expected === undefined || !received) {
      req.resume();
      return sendXml(res, 404, "NoSuchUpload", `no upload ${uploadId} part ${n}`);
    }
    if (Number(req.headers["content-length"]) !== expected) {
      req.resume();
      return sendXml(res, 400, "IncompleteBody", `part ${n} must be ${expected} bytes`);
    }
    const file = join(this.dataDir, "parts", `${uploadId}-${n}`);
    const sink = this.keepParts
      ? createWriteStream(file)
      : new Writable({ write: (_c, _e, cb) => cb() });
    let size = 0;
    const md5 = createHash("md5");
    const tap = new Transform({
      transform(chunk, _enc, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(req, tap, sink);
    if (size !== expected) return sendXml(res, 400, "IncompleteBody", `part ${n} was cut short`);
    const etag = `"${md5.digest("hex")}"`;
    received.set(Number(n), { etag, file });
    res.writeHead(200, { etag }).end();
  }

  private async serveObject(res: http.ServerResponse, url: URL, parts: string[]) {
    const q = url.searchParams;
    if (!this.verify("GET", url.pathname, q.get("expires"), q.get("signature"))) {
      return sendXml(res, 403, "AccessDenied", "request has expired or signature does not match");
    }
    const id = decodeURIComponent(parts[1] ?? "");
    const a = this.byId.get(id);
    if (!a?.stored) return sendXml(res, 404, "NoSuchKey", "no such object");
    res.writeHead(200, {
      "content-length": a.stored.size,
      "content-type": a.content_type,
      etag: `"${a.stored.sha1}"`,
    });
    if (a.stored.bytes) res.end(a.stored.bytes);
    else if (a.stored.file) await pipeline(createReadStream(a.stored.file), res);
    else res.destroy();
  }

  // ---- presigning -----------------------------------------------------------------------------

  private expiry(): number {
    return Math.floor((Date.now() + this.presignTtlMs) / 1000);
  }

  private sign(method: string, what: string, expires: number): string {
    return createHmac("sha256", this.secret).update(`${method}\n${what}\n${expires}`).digest("hex");
  }

  /** Expiry has second granularity, so a TTL under a second still lives until the next tick. */
  private verify(method: string, what: string, expires?: string | null, signature?: string | null) {
    const at = Number(expires);
    if (!Number.isFinite(at) || at * 1000 < Date.now()) return false;
    return signature === this.sign(method, what, at);
  }
}

/** Starts a fake on two loopback ports; call `close()` when done. */
export async function startFakeBuildkite(options: FakeBuildkiteOptions = {}) {
  return new FakeBuildkite(options).start();
}

function checkArtifactInput(a: Record<string, unknown>): string | undefined {
  if (typeof a.path !== "string" || a.path === "") return "every artifact needs a `path`";
  if (typeof a.file_size !== "number" || a.file_size < 0) {
    return `artifact ${a.path}: file_size must be a non-negative number`;
  }
  if (typeof a.sha1sum !== "string" || !/^[0-9a-f]{40}$/.test(a.sha1sum)) {
    return `artifact ${a.path}: sha1sum must be 40 hex digits`;
  }
  if (a.sha256sum !== undefined && !/^([0-9a-f]{64})?$/.test(String(a.sha256sum))) {
    return `artifact ${a.path}: sha256sum must be 64 hex digits`;
  }
  return undefined;
}

/** Near-equal part sizes; the remainder bytes go to the first parts (reference §1). */
function splitSizes(size: number, count: number): number[] {
  const base = Math.floor(size / count);
  const extra = size % count;
  return Array.from({ length: count }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Feeds a request into a form parser and resolves once the form is parsed. Plain events
 * rather than `pipeline`, whose bookkeeping (an abort controller per call) cost more than
 * parsing a small form: the fake serves benchmarks on the same cores as the client.
 */
function feed(req: http.IncomingMessage, parser: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    parser.once("close", () => resolve());
    parser.once("error", reject);
    req.once("error", reject);
    req.pipe(parser);
  });
}

/** A small file part's bytes and sums, in memory. */
function collect(stream: NodeJS.ReadableStream, sums: ReturnType<typeof hashing>) {
  return new Promise<StoredObject>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => {
      sums.update(chunk);
      chunks.push(chunk);
    });
    stream.once("end", () => resolve({ ...sums.result(), bytes: Buffer.concat(chunks) }));
    stream.once("error", reject);
  });
}

function hashing() {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  let size = 0;
  return {
    update: (chunk: Buffer) => {
      sha1.update(chunk);
      sha256.update(chunk);
      size += chunk.length;
    },
    tap: () =>
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          sha1.update(chunk);
          sha256.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      }),
    result: () => ({ size, sha1: sha1.digest("hex"), sha256: sha256.digest("hex") }),
  };
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  try {
    return JSON.parse((await readBody(req)).toString("utf8"));
  } catch {
    return undefined;
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendXml(res: http.ServerResponse, status: number, code: string, message: string): void {
  const text = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { "content-type": "application/xml", "content-length": text.length });
  res.end(text);
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: http.Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * An agent API that refuses every token with a 401 whose message quotes the token back, as a
 * careless server (or proxy) might: for the tests that no secret reaches a log line or a
 * summary even when a server repeats it. `endpoint` is the `/v3` base URL.
 */
export async function startTokenEcho(): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    const message = `token ${String(req.headers.authorization).slice("Token ".length)} is not valid`;
    res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ message }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/v3`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
