import { appendFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { LineFlags, type TailFileEvent, TailReader } from "@buildpod/volume-watch";
import { describe, expect, it } from "vitest";
import { scratchDir } from "./helpers.ts";

async function readAll(reader: TailReader) {
  const lines = [];
  for (let b = await reader.read(); b; b = await reader.read()) lines.push(...b.lines);
  return lines;
}

// The same lines through readRaw, decoded here, to compare with read().
async function readAllRaw(reader: TailReader) {
  const lines = [];
  for (let raw = await reader.readRaw(); raw; raw = await reader.readRaw()) {
    for (let i = 0; i < raw.count; i++) {
      const text = raw.data.toString("utf8", raw.starts[i], raw.ends[i]);
      const offset = i + 1 < raw.count ? raw.startOffset + raw.starts[i + 1] : raw.endOffset;
      lines.push({ text, offset, flags: raw.flags[i] });
    }
  }
  return lines;
}

describe("TailReader", () => {
  it("delivers complete lines with the offset after each, holding a partial last line", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    writeFileSync(file, "one\ntwo\nthr");
    const reader = await TailReader.open(file);

    const first = await readAll(reader);
    expect(first).toEqual([
      { text: "one", offset: 4, flags: 0 },
      { text: "two", offset: 8, flags: 0 },
    ]);
    expect(reader.offset).toBe(8);
    expect(reader.pendingBytes).toBe(3);

    appendFileSync(file, "ee\nfour");
    expect(await readAll(reader)).toEqual([{ text: "three", offset: 14, flags: 0 }]);

    // The drain: the partial line comes out, marked as lacking its newline.
    const flushed = reader.flush();
    expect(flushed?.lines).toEqual([{ text: "four", offset: 18, flags: LineFlags.NO_NEWLINE }]);
    expect(reader.offset).toBe(18);
    expect(reader.flush()).toBeNull();
    await reader.close();
  });

  it("restarts at 0 and reports it when the file is truncated", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    writeFileSync(file, "old line 1\nold line 2\n");
    const events: TailFileEvent[] = [];
    const reader = await TailReader.open(file, { onEvent: (e) => events.push(e) });
    expect((await readAll(reader)).map((l) => l.text)).toEqual(["old line 1", "old line 2"]);

    truncateSync(file, 0);
    appendFileSync(file, "new\n");
    const after = await readAll(reader);

    expect(after).toEqual([{ text: "new", offset: 4, flags: 0 }]);
    expect(events).toEqual([
      expect.objectContaining({ type: "truncated", previousOffset: 22, size: 4 }),
    ]);
    await reader.close();
  });

  it("reads a file deleted mid-read to its end through the open handle", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${"x".repeat(50)}`);
    writeFileSync(file, `${lines.join("\n")}\n`);
    const events: TailFileEvent[] = [];
    const reader = await TailReader.open(file, {
      chunkSize: 64 * 1024,
      onEvent: (e) => events.push(e),
    });

    const firstBatch = await reader.read();
    unlinkSync(file);
    const rest = await readAll(reader);

    const texts = [...(firstBatch?.lines ?? []), ...rest].map((l) => l.text);
    expect(texts).toEqual(lines);
    expect(reader.deleted).toBe(true);
    expect(events.map((e) => e.type)).toEqual(["deleted"]);
    await reader.close();
  });

  it("keeps reading the old file through its handle after a rename", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    writeFileSync(file, "a\n");
    const reader = await TailReader.open(file);
    await readAll(reader);
    renameSync(file, `${file}.1`);
    writeFileSync(file, "new file\n");
    appendFileSync(`${file}.1`, "b\n");
    expect((await readAll(reader)).map((l) => l.text)).toEqual(["b"]);
    await reader.close();
  });

  it("splits a 5 MB line without a newline into marked pieces and goes on with normal lines", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    const huge = "y".repeat(5 * 1024 * 1024);
    const maxLineBytes = 256 * 1024;
    writeFileSync(file, "");
    const reader = await TailReader.open(file, { maxLineBytes });

    // Written in parts with no newline for a long while: pieces come out as they fill up and
    // the held partial line never exceeds the maximum.
    const pieces = [];
    for (let i = 0; i < 5; i++) {
      appendFileSync(file, huge.slice(i * 1024 * 1024, (i + 1) * 1024 * 1024));
      pieces.push(...(await readAll(reader)));
      expect(reader.pendingBytes).toBeLessThanOrEqual(maxLineBytes);
    }
    appendFileSync(file, "\nnormal 1\nnormal 2\n");
    const rest = await readAll(reader);
    const all = [...pieces, ...rest];

    const split = all.filter((l) => l.flags & LineFlags.SPLIT);
    expect(split.map((l) => l.text).join("")).toBe(huge);
    expect(split.every((l) => Buffer.byteLength(l.text) <= maxLineBytes)).toBe(true);
    expect(split.filter((l) => l.flags & LineFlags.SPLIT_END)).toHaveLength(1);
    expect(split.at(-1)?.flags).toBe(LineFlags.SPLIT | LineFlags.SPLIT_END);
    expect(split.at(-1)?.offset).toBe(huge.length + 1);
    expect(all.slice(-2)).toEqual([
      { text: "normal 1", offset: huge.length + 10, flags: 0 },
      { text: "normal 2", offset: huge.length + 19, flags: 0 },
    ]);
    await reader.close();
  });

  it("cuts long lines on UTF-8 character boundaries", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    const line = "é€😀".repeat(5000); // 2-, 3- and 4-byte characters
    writeFileSync(file, `${line}\n`);
    const reader = await TailReader.open(file, { maxLineBytes: 1000, chunkSize: 4096 });
    const pieces = await readAll(reader);
    expect(pieces.length).toBeGreaterThan(20);
    expect(
      pieces.every((l) => !l.text.includes("\uFFFD") && !(l.flags & LineFlags.INVALID_UTF8)),
    ).toBe(true);
    expect(pieces.map((l) => l.text).join("")).toBe(line);
    await reader.close();
  });

  it("replaces invalid UTF-8 with U+FFFD, flags only those lines and goes on", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    const bytes = Buffer.concat([
      Buffer.from("fine\n"),
      Buffer.from([0x62, 0x61, 0xff, 0x64, 0x0a]), // "ba\xffd"
      Buffer.from("déjà vu\n"),
      Buffer.from([0xe2, 0x82, 0x0a]), // a truncated 3-byte sequence
      Buffer.from("after\n"),
    ]);
    writeFileSync(file, bytes);
    const reader = await TailReader.open(file);
    const lines = await readAll(reader);
    expect(lines.map((l) => [l.text, l.flags])).toEqual([
      ["fine", 0],
      ["ba\uFFFDd", LineFlags.INVALID_UTF8],
      ["déjà vu", 0],
      ["\uFFFD", LineFlags.INVALID_UTF8],
      ["after", 0],
    ]);
    expect(lines.at(-1)?.offset).toBe(bytes.length);
    await reader.close();

    const raw = await TailReader.open(file);
    expect(await readAllRaw(raw)).toEqual(lines);
    await raw.close();
  });

  it("yields the same lines whatever the chunk size", async () => {
    const { root } = scratchDir();
    const file = path.join(root, "app.log");
    // Deterministic pseudo-random lines: empty, short, multi-byte, longer than maxLineBytes.
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = ["a", "b", " ", "ü", "€", "😀", "\r"];
    const lines = Array.from({ length: 3000 }, () => {
      const length = random() < 0.05 ? Math.floor(random() * 300) : Math.floor(random() * 40);
      return Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join(
        "",
      );
    });
    writeFileSync(file, `${lines.join("\n")}\n`);

    for (const chunkSize of [61, 4096, 1024 * 1024]) {
      const reader = await TailReader.open(file, { chunkSize, maxLineBytes: 256 });
      const got = await readAll(reader);
      // Rejoin split pieces to compare with the original lines.
      const joined: string[] = [];
      let current = "";
      for (const l of got) {
        current += l.text;
        if (!(l.flags & LineFlags.SPLIT) || l.flags & LineFlags.SPLIT_END) {
          joined.push(current);
          current = "";
        }
      }
      expect(joined, `chunkSize ${chunkSize}`).toEqual(lines);
      expect(got.every((l) => !(l.flags & LineFlags.INVALID_UTF8))).toBe(true);
      await reader.close();

      // readRaw finds the very same lines, offsets and flags.
      const raw = await TailReader.open(file, { chunkSize, maxLineBytes: 256 });
      expect(await readAllRaw(raw), `raw, chunkSize ${chunkSize}`).toEqual(got);
      await raw.close();
    }
  });

  it("refuses a path that is not a regular file and bad options", async () => {
    const { root } = scratchDir();
    await expect(TailReader.open(root)).rejects.toThrow(/not a regular file/);
    const file = path.join(root, "a.log");
    writeFileSync(file, "");
    await expect(TailReader.open(file, { maxLineBytes: 2 })).rejects.toThrow(/maxLineBytes/);
  });
});
