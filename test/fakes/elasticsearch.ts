// A fake Elasticsearch that speaks the real `_bulk` wire protocol on 127.0.0.1.
//
// It keeps the documents it accepted per index and id, answers `create` of an existing id with
// 409 like the real server, and lets a test decide the status of a whole request or of single
// items (to mix 201, 409, 429, 503 and 400 in one `errors: true` response). Wire facts from the
// elasticsearch-specification (`_global/bulk`): NDJSON body ending in a newline, items in
// request order, each `{<op>: {_index, _id, status, error?}}`; the official client insists on
// the `x-elastic-product: Elasticsearch` response header.
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One bulk item as the fake saw it, passed to `itemStatus`. */
export interface BulkItem {
  op: "create" | "index" | "update" | "delete";
  index: string;
  id: string | undefined;
  source: Record<string, unknown> | undefined;
  /** How many times an item with this id was received before (0 the first time). */
  seen: number;
}

export interface FakeElasticsearchOptions {
  /** Status for a whole `_bulk` request (e.g. 503 to simulate an outage); undefined = handle. */
  requestStatus?: (request: { path: string; bytes: number; count: number }) => number | undefined;
  /** Status for one item before it is stored (e.g. 429, 503, 400); undefined = store it. */
  itemStatus?: (item: BulkItem) => number | undefined;
  /** Delay every `_bulk` answer by this many milliseconds (a slow sink). */
  delayMs?: number;
  /** Keep document sources (default true; a benchmark receiver only counts). */
  keepSources?: boolean;
}

const ERROR_TYPES: Record<number, string> = {
  400: "document_parsing_exception",
  404: "index_not_found_exception",
  409: "version_conflict_engine_exception",
  429: "es_rejected_execution_exception",
  503: "unavailable_shards_exception",
};

/** A loopback `_bulk` server. Create with `startFakeElasticsearch`. */
export class FakeElasticsearch {
  readonly server: Server;
  options: FakeElasticsearchOptions;
  /** index -> id -> source (or null when sources are not kept). */
  readonly indices = new Map<string, Map<string, Record<string, unknown> | null>>();
  /** id -> number of times any item with this id arrived. */
  readonly attempts = new Map<string, number>();
  /** Every `_bulk` request: how many items it carried and the status it got. */
  readonly requests: { path: string; items: number; status: number }[] = [];
  /** The `authorization` header of every request (undefined when absent). */
  readonly authorizations: (string | undefined)[] = [];
  #autoId = 0;

  constructor(options: FakeElasticsearchOptions = {}) {
    this.options = options;
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => reply(res, 500, errorBody(500, String(err))));
    });
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Every stored document of `index` (ids to sources). */
  documents(index: string): Map<string, Record<string, unknown> | null> {
    return this.indices.get(index) ?? new Map();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close").catch(() => undefined);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const body = await readBody(req);
    this.authorizations.push(req.headers.authorization);
    if (url.pathname === "/" && (req.method === "GET" || req.method === "HEAD")) {
      reply(res, 200, { name: "fake", cluster_name: "fake", version: { number: "9.1.0" } });
      return;
    }
    const bulk = /^\/(?:([^/_][^/]*)\/)?_bulk$/.exec(url.pathname);
    if (!bulk || (req.method !== "POST" && req.method !== "PUT")) {
      reply(res, 404, errorBody(404, `no handler for ${req.method} ${url.pathname}`));
      return;
    }
    if (this.options.delayMs) await new Promise((r) => setTimeout(r, this.options.delayMs));
    const defaultIndex = bulk[1] === undefined ? undefined : decodeURIComponent(bulk[1]);
    this.#bulk(url.pathname, defaultIndex, body, res);
  }

  #bulk(path: string, defaultIndex: string | undefined, body: Buffer, res: ServerResponse): void {
    if (body.length > 0 && body[body.length - 1] !== 0x0a) {
      const reason = "The bulk request must be terminated by a newline [\\n]";
      this.requests.push({ path, items: 0, status: 400 });
      reply(res, 400, errorBody(400, reason, "illegal_argument_exception"));
      return;
    }
    const lines = body.toString("utf8").split("\n");
    lines.pop();
    const ops = parseOps(lines, defaultIndex);
    const forced = this.options.requestStatus?.({ path, bytes: body.length, count: ops.length });
    if (forced !== undefined) {
      this.requests.push({ path, items: ops.length, status: forced });
      reply(res, forced, errorBody(forced, "forced by the test"));
      return;
    }
    const items = ops.map((op) => this.#item(op));
    this.requests.push({ path, items: ops.length, status: 200 });
    const errors = items.some((i) => (Object.values(i)[0] as { status: number }).status >= 300);
    reply(res, 200, { took: 1, errors, items });
  }

  #item(op: ParsedOp): Record<string, unknown> {
    const id = op.id ?? `auto-${++this.#autoId}`;
    const seen = this.attempts.get(id) ?? 0;
    this.attempts.set(id, seen + 1);
    const base = { _index: op.index, _id: id };
    if (op.error !== undefined) {
      return { [op.op]: { ...base, status: 400, error: errorBody(400, op.error).error } };
    }
    const forced = this.options.itemStatus?.({ ...op, id, seen });
    if (forced !== undefined) {
      return { [op.op]: { ...base, status: forced, error: errorBody(forced, "forced").error } };
    }
    let docs = this.indices.get(op.index);
    if (!docs) {
      docs = new Map();
      this.indices.set(op.index, docs);
    }
    if (op.op === "create" && docs.has(id)) {
      const reason = `[${id}]: version conflict, document already exists (current version [1])`;
      return { [op.op]: { ...base, status: 409, error: errorBody(409, reason).error } };
    }
    if (op.op === "delete") {
      const found = docs.delete(id);
      return {
        delete: { ...base, status: found ? 200 : 404, result: found ? "deleted" : "not_found" },
      };
    }
    const existed = docs.has(id);
    docs.set(id, this.options.keepSources === false ? null : (op.source ?? null));
    const status = existed ? 200 : 201;
    return { [op.op]: { ...base, status, result: existed ? "updated" : "created", _version: 1 } };
  }
}

interface ParsedOp {
  op: BulkItem["op"];
  index: string;
  id: string | undefined;
  source: Record<string, unknown> | undefined;
  /** Set when the source line is not a JSON object: the item fails with 400 like ES. */
  error?: string;
}

function parseOps(lines: string[], defaultIndex: string | undefined): ParsedOp[] {
  const ops: ParsedOp[] = [];
  for (let i = 0; i < lines.length; i++) {
    const action = JSON.parse(lines[i] as string) as Record<
      string,
      { _index?: string; _id?: string }
    >;
    const op = Object.keys(action)[0] as BulkItem["op"];
    const meta = action[op] ?? {};
    const index = meta._index ?? defaultIndex ?? "_missing_";
    const parsed: ParsedOp = { op, index, id: meta._id, source: undefined };
    if (op !== "delete") {
      const line = lines[++i] ?? "";
      try {
        const source = JSON.parse(line) as unknown;
        if (typeof source !== "object" || source === null || Array.isArray(source)) {
          parsed.error = "failed to parse: not a JSON object";
        } else parsed.source = source as Record<string, unknown>;
      } catch (err) {
        parsed.error = `failed to parse: ${(err as Error).message}`;
      }
    }
    ops.push(parsed);
  }
  return ops;
}

function errorBody(status: number, reason: string, type = ERROR_TYPES[status] ?? "exception") {
  return { error: { type, reason }, status };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "x-elastic-product": "Elasticsearch",
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Starts a fake on a free loopback port. Close it with `close()`. */
export async function startFakeElasticsearch(
  options: FakeElasticsearchOptions = {},
): Promise<FakeElasticsearch> {
  const fake = new FakeElasticsearch(options);
  fake.server.listen(0, "127.0.0.1");
  await once(fake.server, "listening");
  return fake;
}
