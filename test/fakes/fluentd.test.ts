// The fake forward server, driven by a hand-rolled msgpack client (Forward Protocol v1).
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import { decodeMultiStream, encode } from "@msgpack/msgpack";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeFluentd, startFakeFluentd } from "./fluentd.ts";

let fake: FakeFluentd | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

async function open(port: number): Promise<{ socket: Socket; replies: AsyncIterator<unknown> }> {
  const socket = connect(port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  return { socket, replies: decodeMultiStream(socket)[Symbol.asyncIterator]() };
}

function packed(...entries: [number, Record<string, unknown>][]): Uint8Array {
  return Buffer.concat(entries.map((e) => encode(e)));
}

describe("fake fluentd", () => {
  it("acks a PackedForward chunk and stores its entries", async () => {
    fake = await startFakeFluentd();
    const { socket, replies } = await open(fake.port);
    socket.write(
      encode([
        "app",
        packed([1, { message: "a" }], [2, { message: "b" }]),
        { chunk: "c1", size: 2 },
      ]),
    );
    expect((await replies.next()).value).toEqual({ ack: "c1" });
    expect(fake.events.map((e) => e.record.message)).toEqual(["a", "b"]);
    socket.destroy();
  });

  it("checks the shared key handshake", async () => {
    fake = await startFakeFluentd({ sharedKey: "k", serverHostname: "srv" });
    const { socket, replies } = await open(fake.port);
    const [helo, options] = (await replies.next()).value as [string, { nonce: Uint8Array }];
    expect(helo).toBe("HELO");
    const digest = createHash("sha512")
      .update("salt")
      .update("client")
      .update(options.nonce)
      .update("k")
      .digest("hex");
    socket.write(encode(["PING", "client", "salt", digest, "", ""]));
    const pong = (await replies.next()).value as unknown[];
    expect(pong.slice(0, 4)).toEqual(["PONG", true, "", "srv"]);
    socket.write(encode(["app", 5, { message: "m" }, { chunk: "c2" }]));
    expect((await replies.next()).value).toEqual({ ack: "c2" });
    socket.destroy();
  });

  it("can close a connection instead of acking", async () => {
    fake = await startFakeFluentd({ onChunk: () => "close" });
    const { socket } = await open(fake.port);
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.write(encode(["app", [[1, { message: "lost" }]], { chunk: "c3" }]));
    await closed;
    expect(fake.events).toHaveLength(0);
    expect(fake.chunks).toEqual(["c3"]);
  });
});
