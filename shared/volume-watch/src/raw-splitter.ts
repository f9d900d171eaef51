// The byte-level twin of line-splitter.ts for `TailReader.readRaw`: the same line rules (split
// long lines on UTF-8 boundaries, hold the unterminated tail), but recording where each line
// lies instead of decoding it. Nothing is allocated per line; the boundary arrays are reused.

import { isUtf8 } from "node:buffer";
import { type SplitState, utf8Boundary } from "./line-splitter.ts";
import { LineFlags } from "./types.ts";

/** Line boundaries found in a buffer; arrays grow as needed and are reused between reads. */
export class Boundaries {
  starts = new Uint32Array(8192);
  ends = new Uint32Array(8192);
  flags = new Uint8Array(8192);
  count = 0;

  push(start: number, end: number, flags: number): void {
    if (this.count === this.starts.length) this.grow();
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.flags[this.count] = flags;
    this.count++;
  }

  private grow(): void {
    const size = this.starts.length * 2;
    const starts = new Uint32Array(size);
    const ends = new Uint32Array(size);
    const flags = new Uint8Array(size);
    starts.set(this.starts);
    ends.set(this.ends);
    flags.set(this.flags);
    this.starts = starts;
    this.ends = ends;
    this.flags = flags;
  }
}

const NEWLINE = 0x0a;

/**
 * Records the lines of `buf[0, end)` in `out` (reset first). Returns how many bytes they
 * cover; the rest is the caller's partial line, as with `splitLines`.
 */
export function splitRaw(
  buf: Buffer,
  end: number,
  maxLine: number,
  state: SplitState,
  out: Boundaries,
): number {
  out.count = 0;
  const lastNewline = end > 0 ? buf.lastIndexOf(NEWLINE, end - 1) : -1;
  const regionEnd = lastNewline + 1;
  const view = buf.subarray(0, regionEnd);
  const valid = regionEnd === 0 || isUtf8(view);
  let start = 0;
  while (start < regionEnd) {
    const newline = view.indexOf(NEWLINE, start);
    if (newline - start > maxLine || state.inSplitLine) {
      pieces(buf, start, newline, maxLine, state, out, true, valid);
    } else {
      const ok = valid || isUtf8(buf.subarray(start, newline));
      out.push(start, newline, ok ? 0 : LineFlags.INVALID_UTF8);
    }
    start = newline + 1;
  }
  if (end - start > maxLine) start = pieces(buf, start, end, maxLine, state, out, false, false);
  return start;
}

function pieces(
  buf: Buffer,
  start: number,
  end: number,
  maxLine: number,
  state: SplitState,
  out: Boundaries,
  final: boolean,
  knownValid: boolean,
): number {
  let s = start;
  while (end - s > maxLine) {
    const cut = utf8Boundary(buf, s, s + maxLine);
    out.push(s, cut, flagsOf(buf, s, cut, LineFlags.SPLIT, knownValid));
    s = cut;
    state.inSplitLine = true;
  }
  if (!final) return s;
  out.push(s, end, flagsOf(buf, s, end, LineFlags.SPLIT | LineFlags.SPLIT_END, knownValid));
  state.inSplitLine = false;
  return end + 1;
}

function flagsOf(
  buf: Buffer,
  start: number,
  end: number,
  flags: number,
  knownValid: boolean,
): number {
  return knownValid || isUtf8(buf.subarray(start, end)) ? flags : flags | LineFlags.INVALID_UTF8;
}
