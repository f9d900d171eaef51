// The state the Tailer keeps per open file, and how a file's checkpoint is matched to it.

import { AckTrack } from "./ack-track.ts";
import { type Checkpoint, type Fingerprint, fingerprintOf } from "./checkpoints.ts";
import type { TailReader } from "./tail-reader.ts";
import type { FileInfo } from "./types.ts";

/** One open file. */
export interface Tailed {
  reader: TailReader;
  path: string;
  absolutePath: string;
  id: string;
  dev: string;
  ino: string;
  track: AckTrack;
  fingerprint: Fingerprint;
  /** A read may find new bytes (set by events and polls, cleared at end of file). */
  hasData: boolean;
  /** When the file stopped being reachable at its path (deleted, rotated away). */
  detachedAt?: number;
  /** The file this one replaced at its path: read that to its end first. */
  predecessor?: Tailed;
  reachedEnd: boolean;
  closed: boolean;
}

/** What the Tailer remembers of a batch it handed out, to apply its ack. */
export interface Issued {
  file: Tailed;
  track: AckTrack;
  entry: ReturnType<AckTrack["add"]>;
}

/** The state of a file just opened at `offset`; `head` is its first bytes (the fingerprint). */
export function tailedFile(
  reader: TailReader,
  info: FileInfo,
  offset: number,
  head: Buffer,
): Tailed {
  const [dev, ino] = reader.fileId.split(":");
  return {
    reader,
    path: info.path,
    absolutePath: info.absolutePath,
    id: reader.fileId,
    dev,
    ino,
    track: new AckTrack(offset),
    fingerprint: fingerprintOf(head),
    hasData: true,
    reachedEnd: false,
    closed: false,
  };
}

/**
 * A checkpoint counts only when the file's leading bytes hash as they did: dev+inode alone
 * would let a new file on a reused inode skip its beginning. A file now shorter than the
 * bytes fingerprinted does not match either.
 */
export function matchesHead(saved: Checkpoint, head: Buffer): boolean {
  const { bytes, hash } = saved.fingerprint;
  return head.length >= bytes && fingerprintOf(head.subarray(0, bytes)).hash === hash;
}
