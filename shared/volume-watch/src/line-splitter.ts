// The hot loop of the tail reader. A 1 MiB chunk is split on 0x0a and decoded with as little
// work per line as possible: when the region of complete lines is valid UTF-8 (checked at
// once, with SIMD) it is decoded into one string and split on "\n", which agrees with the byte
// split because a newline byte never occurs inside a multi-byte UTF-8 sequence; only a region
// holding invalid UTF-8 is decoded line by line, each line checked and flagged.

import { isAscii, isUtf8 } from "node:buffer";
import { type Line, LineFlags } from "./types.ts";

/** Carried from one chunk to the next: are we in the middle of a line being split? */
export interface SplitState {
  inSplitLine: boolean;
}

const NEWLINE = 0x0a;

/**
 * Splits `buf[0, end)`, whose first byte sits at file offset `base`, into lines appended to
 * `out`. Returns how many bytes were consumed: everything up to the last newline, plus leading
 * pieces of an unterminated tail longer than `maxLine`. The rest is the caller's partial line.
 */
export function splitLines(
  buf: Buffer,
  end: number,
  base: number,
  maxLine: number,
  state: SplitState,
  out: Line[],
): number {
  const lastNewline = end > 0 ? buf.lastIndexOf(NEWLINE, end - 1) : -1;
  let consumed = 0;
  if (lastNewline >= 0) consumed = splitComplete(buf, lastNewline + 1, base, maxLine, state, out);
  if (end - consumed > maxLine) {
    consumed = emitPieces(buf, consumed, end, base, maxLine, state, out, false, false);
  }
  return consumed;
}

/**
 * Emits `buf[start, end)` as one last line without a newline (the drain's flush), flagged
 * `NO_NEWLINE` and, if it ends a split line, `SPLIT | SPLIT_END`.
 */
export function flushLine(
  buf: Buffer,
  start: number,
  end: number,
  offset: number,
  state: SplitState,
): Line {
  const slice = buf.subarray(start, end);
  let flags: number = LineFlags.NO_NEWLINE;
  if (!isUtf8(slice)) flags |= LineFlags.INVALID_UTF8;
  if (state.inSplitLine) flags |= LineFlags.SPLIT | LineFlags.SPLIT_END;
  state.inSplitLine = false;
  return { text: slice.toString("utf8"), offset, flags };
}

// Splits buf[0, regionEnd), which ends with a newline. Valid text is decoded once and cut
// with String.prototype.split, whose slices V8 makes natively: several times faster than
// slicing line by line in JavaScript.
function splitComplete(
  buf: Buffer,
  regionEnd: number,
  base: number,
  maxLine: number,
  state: SplitState,
  out: Line[],
): number {
  const region = buf.subarray(0, regionEnd);
  // ASCII (checked with SIMD) decodes as Latin-1, a plain copy, several times faster than
  // UTF-8 decoding; a line's length is then also its byte length.
  const ascii = isAscii(region);
  if (!ascii && !isUtf8(region)) return splitInvalid(buf, regionEnd, base, maxLine, state, out);

  // Without the final newline, so that there is exactly one part per line.
  const decoded = buf.toString(ascii ? "latin1" : "utf8", 0, regionEnd - 1);
  const parts = decoded.split("\n");
  if (ascii && !state.inSplitLine) return splitAscii(buf, parts, base, maxLine, state, out);
  let start = 0;
  for (let i = 0; i < parts.length; i++) {
    const text = parts[i];
    // In ASCII one character is one byte; otherwise the newline is found in the bytes.
    const newline = ascii ? start + text.length : buf.indexOf(NEWLINE, start);
    if (newline - start > maxLine || state.inSplitLine) {
      emitPieces(buf, start, newline, base, maxLine, state, out, true, true);
    } else {
      out.push({ text, offset: base + newline + 1, flags: 0 });
    }
    start = newline + 1;
  }
  return regionEnd;
}

// The common case, kept lean: ASCII (a character is a byte), not inside a split line.
function splitAscii(
  buf: Buffer,
  parts: string[],
  base: number,
  maxLine: number,
  state: SplitState,
  out: Line[],
): number {
  let start = 0;
  for (let i = 0; i < parts.length; i++) {
    const text = parts[i];
    const newline = start + text.length;
    if (text.length > maxLine)
      emitPieces(buf, start, newline, base, maxLine, state, out, true, true);
    else out.push({ text, offset: base + newline + 1, flags: 0 });
    start = newline + 1;
  }
  return start;
}

// The slow path for a region holding invalid UTF-8: each line is checked and decoded alone,
// so only the lines that hold invalid bytes are flagged.
function splitInvalid(
  buf: Buffer,
  regionEnd: number,
  base: number,
  maxLine: number,
  state: SplitState,
  out: Line[],
): number {
  let start = 0;
  while (start < regionEnd) {
    const newline = buf.indexOf(NEWLINE, start);
    if (newline - start > maxLine || state.inSplitLine) {
      emitPieces(buf, start, newline, base, maxLine, state, out, true, false);
    } else {
      const valid = isUtf8(buf.subarray(start, newline));
      const flags = valid ? 0 : LineFlags.INVALID_UTF8;
      out.push({ text: buf.toString("utf8", start, newline), offset: base + newline + 1, flags });
    }
    start = newline + 1;
  }
  return regionEnd;
}

// Emits buf[start, end) in pieces of at most maxLine bytes, cut on UTF-8 boundaries. With
// `final`, end is the line's newline and everything is emitted (the last piece SPLIT_END);
// otherwise only while more than maxLine bytes remain. Returns where the rest begins.
function emitPieces(
  buf: Buffer,
  start: number,
  end: number,
  base: number,
  maxLine: number,
  state: SplitState,
  out: Line[],
  final: boolean,
  knownValid: boolean,
): number {
  let s = start;
  while (end - s > maxLine) {
    const cut = utf8Boundary(buf, s, s + maxLine);
    out.push(piece(buf, s, cut, base + cut, LineFlags.SPLIT, knownValid));
    s = cut;
    state.inSplitLine = true;
  }
  if (!final) return s;
  const flags = LineFlags.SPLIT | LineFlags.SPLIT_END;
  out.push(piece(buf, s, end, base + end + 1, flags, knownValid));
  state.inSplitLine = false;
  return end + 1;
}

function piece(
  buf: Buffer,
  start: number,
  end: number,
  offset: number,
  flags: number,
  knownValid: boolean,
): Line {
  const valid = knownValid || isUtf8(buf.subarray(start, end));
  const f = valid ? flags : flags | LineFlags.INVALID_UTF8;
  return { text: buf.toString("utf8", start, end), offset, flags: f };
}

// Moves a cut back (by at most 3 bytes) so it does not fall inside a multi-byte character:
// UTF-8 continuation bytes look like 10xxxxxx. Invalid input may have no boundary nearby;
// then the cut stays where it was (the pieces are flagged invalid anyway).
export function utf8Boundary(buf: Buffer, lineStart: number, cut: number): number {
  for (let k = cut; k > cut - 4 && k > lineStart; k--) {
    if ((buf[k] & 0xc0) !== 0x80) return k;
  }
  return cut;
}
