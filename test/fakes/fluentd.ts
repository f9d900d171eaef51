// A fake fluentd `in_forward` that speaks Forward Protocol v1 (msgpack over TCP or TLS) on
// 127.0.0.1: Message, Forward, PackedForward and CompressedPackedForward modes, `chunk` acks,
// the optional shared-key handshake (HELO / PING / PONG), and failure modes a test can switch
// on: close the connection instead of acking a chunk, or never answer it.
//
// Protocol facts (fluentd wiki, Forward-Protocol-Specification-v1): the mode is told apart by the
// type of the second array element; PackedForward carries concatenated msgpack [time, record]
// entries; EventTime is ext type 0 with big-endian uint32 seconds and nanoseconds; a chunk option
// must be answered with {"ack": <chunk>}; the shared-key digest is
// sha512_hex(salt + hostname + nonce + shared_key).
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import { gunzipSync } from "node:zlib";
import { decodeMulti, decodeMultiStream, ExtensionCodec, encode } from "@msgpack/msgpack";

/** One event the fake accepted. */
export interface ForwardEvent {
  tag: string;
  /** Seconds since the epoch (EventTime keeps its nanoseconds as a fraction). */
  time: number;
  record: Record<string, unknown>;
}

/** What to do with a chunk that asked for an ack. */
export type ChunkAction = "ack" | "close" | "silent";

export interface FakeFluentdOptions {
  /** Require the shared-key handshake with this key. */
  sharedKey?: string;
  serverHostname?: string;
  /** Serve TLS with these options (key and cert) instead of plain TCP. */
  tls?: TlsOptions;
  /**
   * Decides the fate of each chunk: `ack` stores its events and acks, `close` drops the
   * connection without storing or acking, `silent` stores nothing and never answers.
   */
  onChunk?: (chunk: { tag: string; id: string; size: number; n: number }) => ChunkAction;
}

const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: () => null,
  decode: (data: Uint8Array) => {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return view.getUint32(0) + view.getUint32(4) / 1e9;
  },
});

/** A loopback forward server. Create with `startFakeFluentd`. */
export class FakeFluentd {
  readonly options: FakeFluentdOptions;
  readonly events: ForwardEvent[] = [];
  /** Every chunk id received, acked or not, in order. */
  readonly chunks: string[] = [];
  port = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(options: FakeFluentdOptions = {}) {
    this.options = options;
  }

  /** Starts listening (again, on the same port after `stop`). */
  async start(): Promise<void> {
    const onSocket = (socket: Socket) => this.#serve(socket);
    const server = this.options.tls
      ? createTlsServer(this.options.tls, onSocket)
      : createTcpServer(onSocket);
    server.listen(this.port, "127.0.0.1");
    await once(server, "listening");
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stops listening and drops every connection (a fluentd restart). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    for (const socket of this.#sockets) socket.destroy();
    server.close();
    await once(server, "close").catch(() => undefined);
  }

  async #serve(socket: Socket): Promise<void> {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => undefined);
    const nonce = randomBytes(16);
    let authed = this.options.sharedKey === undefined;
    if (!authed) socket.write(encode(["HELO", { nonce, auth: "", keepalive: true }]));
    try {
      for await (const message of decodeMultiStream(socket, { extensionCodec: codec })) {
        if (message === null) continue; // heartbeat
        if (!authed) {
          authed = this.#handshake(socket, message, nonce);
          if (!authed) return;
          continue;
        }
        if (!this.#receive(socket, message as unknown[])) return;
      }
    } catch {
      socket.destroy();
    }
  }

  /** Checks a PING and answers PONG; false (and the socket closed) when it does not match. */
  #handshake(socket: Socket, message: unknown, nonce: Buffer): boolean {
    const key = this.options.sharedKey as string;
    const ping = message as [string, string, Uint8Array | string, string];
    const [kind, hostname, salt, digest] = ping;
    const expected = sha512(salt, hostname, nonce, key);
    const ok = kind === "PING" && digest === expected;
    const server = this.options.serverHostname ?? "fake-fluentd";
    const reason = ok ? "" : "shared_key mismatch";
    socket.write(encode(["PONG", ok, reason, server, ok ? sha512(salt, server, nonce, key) : ""]));
    if (!ok) socket.end();
    return ok;
  }

  /** Stores one transport message; false when the socket was closed on purpose. */
  #receive(socket: Socket, message: unknown[]): boolean {
    const [tag, second, third, fourth] = message as [string, unknown, unknown, unknown];
    let entries: [number, Record<string, unknown>][];
    let option: Record<string, unknown> | undefined;
    if (typeof second === "number") {
      entries = [[second, third as Record<string, unknown>]]; // Message mode
      option = fourth as Record<string, unknown> | undefined;
    } else if (Array.isArray(second)) {
      entries = second as [number, Record<string, unknown>][]; // Forward mode
      option = third as Record<string, unknown> | undefined;
    } else {
      option = third as Record<string, unknown> | undefined;
      let packed = second as Uint8Array;
      if (option?.compressed === "gzip") packed = gunzipSync(packed);
      entries = [...decodeMulti(packed, { extensionCodec: codec })] as [number, never][];
    }

    const id = typeof option?.chunk === "string" ? option.chunk : undefined;
    if (id !== undefined) this.chunks.push(id);
    const size = entries.length;
    const action =
      id === undefined
        ? "ack"
        : (this.options.onChunk?.({ tag, id, size, n: this.chunks.length }) ?? "ack");
    if (action === "close") {
      socket.destroy();
      return false;
    }
    if (action === "silent") return true;
    for (const [time, record] of entries) this.events.push({ tag, time, record });
    if (id !== undefined) socket.write(encode({ ack: id }));
    return true;
  }
}

function sha512(...parts: (string | Uint8Array)[]): string {
  const hash = createHash("sha512");
  for (const p of parts) hash.update(p);
  return hash.digest("hex");
}

/** Starts a fake forward server on a free loopback port. Stop it with `stop()`. */
export async function startFakeFluentd(options: FakeFluentdOptions = {}): Promise<FakeFluentd> {
  const fake = new FakeFluentd(options);
  await fake.start();
  return fake;
}
