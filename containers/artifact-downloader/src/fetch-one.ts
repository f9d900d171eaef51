import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, realpath, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type ArtifactStore,
  noteBuffers,
  type RemoteArtifact,
  StoreError,
} from "@buildpod/artifact-store";

/** Marks a file still being written; renamed to its real name only once verified. */
export const PARTIAL_MARK = ".buildpod-partial-";

/** Temp names: a random prefix per process and a counter (the `wx` flag refuses a clash). */
const TEMP_PREFIX = `${PARTIAL_MARK}${randomBytes(6).toString("hex")}-`;
let temps = 0;

/**
 * Artifacts up to this size are received into memory, verified, then written in one call:
 * for thousands of small files the stream pipeline (a transform and a write stream each)
 * costs more than the bytes. At most `--concurrency` of them are held at once.
 */
export const IN_MEMORY_LIMIT = 256 * 1024;

/**
 * Downloads one artifact to `absolute` (inside `destRoot`): streams into a temp file in the
 * target directory while hashing, checks the size and the sha256 (else sha1) the search gave,
 * then renames over the target. On any failure the temp file is removed and nothing appears
 * at the target. Returns the bytes written.
 */
export async function fetchOne(
  store: ArtifactStore,
  artifact: RemoteArtifact,
  absolute: string,
  destRoot: string,
  onBytes: (n: number) => void,
  dirs: DirCache,
  signal?: AbortSignal,
): Promise<number> {
  const dir = path.dirname(absolute);
  await prepareDir(dirs, destRoot, dir, artifact.path);

  const temp = path.join(dir, `${TEMP_PREFIX}${(temps++).toString(36)}`);
  if (artifact.fileSize > 0 && artifact.fileSize <= IN_MEMORY_LIMIT) {
    return fetchSmall(store, artifact, absolute, temp, onBytes, signal);
  }
  const check = expectedSum(artifact);
  const hash = check ? createHash(check.algorithm) : undefined;
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash?.update(chunk);
      bytes += chunk.length;
      onBytes(chunk.length);
      noteBuffers(chunk.length);
      done(null, chunk);
    },
  });
  try {
    const body = await store.open(artifact, signal);
    await pipeline(body, count, createWriteStream(temp, { flags: "wx" }), { signal });
    verify(artifact, bytes, check && hash ? { ...check, got: hash.digest("hex") } : undefined);
    await rename(temp, absolute);
    return bytes;
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * `fetchOne` for a small artifact: the body is collected (never more than the size the search
 * gave), checked like a streamed one, and only then written to the temp file and renamed.
 */
async function fetchSmall(
  store: ArtifactStore,
  artifact: RemoteArtifact,
  absolute: string,
  temp: string,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): Promise<number> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const body = await store.open(artifact, signal);
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    onBytes(chunk.length);
    noteBuffers(chunk.length);
    if (bytes > artifact.fileSize) break; // too long: the size check below fails it
    chunks.push(chunk);
  }
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  const check = expectedSum(artifact);
  const got = check && createHash(check.algorithm).update(data).digest("hex");
  verify(artifact, bytes, check && got ? { ...check, got } : undefined);
  // Blocking calls: a small file's open, write, close and rename through the thread pool cost
  // more CPU than the file itself (see IN_MEMORY_LIMIT); each blocks for microseconds.
  signal?.throwIfAborted();
  try {
    writeFileSync(temp, data, { flag: "wx" });
    renameSync(temp, absolute);
    return bytes;
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/** The sum to check: sha256 when the search result has one, else sha1, else none. */
function expectedSum(
  a: RemoteArtifact,
): { algorithm: "sha256" | "sha1"; want: string } | undefined {
  if (/^[0-9a-f]{64}$/i.test(a.sha256sum)) return { algorithm: "sha256", want: a.sha256sum };
  if (/^[0-9a-f]{40}$/i.test(a.sha1sum)) return { algorithm: "sha1", want: a.sha1sum };
  return undefined;
}

function verify(
  a: RemoteArtifact,
  bytes: number,
  sum?: { algorithm: string; want: string; got: string },
): void {
  if (a.fileSize > 0 && bytes !== a.fileSize) {
    throw new StoreError(
      "ARTIFACT_DOWNLOADER_SIZE_MISMATCH",
      `could not download ${a.path}: got ${bytes} bytes, the artifact has ${a.fileSize}`,
      { retryable: true },
    );
  }
  if (sum && sum.got !== sum.want.toLowerCase()) {
    throw new StoreError(
      "ARTIFACT_DOWNLOADER_CHECKSUM_MISMATCH",
      `could not download ${a.path}: its ${sum.algorithm} is ${sum.got}, the artifact says ${sum.want}; the stored copy is damaged or was replaced, nothing was written`,
    );
  }
}

/** Target directories already created and checked in this run, shared by all downloads. */
export type DirCache = Map<string, Promise<void>>;

/**
 * Creates `dir` below the destination once per run: the nearest existing ancestor is checked
 * before creating anything (a symlink in the destination must not lead mkdir outside), and the
 * result after. Later downloads into the same directory reuse the check.
 */
function prepareDir(dirs: DirCache, destRoot: string, dir: string, artifactPath: string) {
  let ready = dirs.get(dir);
  if (!ready) {
    ready = (async () => {
      await ensureInside(destRoot, await nearestExisting(dir), artifactPath);
      await mkdir(dir, { recursive: true });
      await ensureInside(destRoot, dir, artifactPath);
    })();
    ready.catch(() => dirs.delete(dir));
    dirs.set(dir, ready);
  }
  return ready;
}

async function nearestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      await realpath(d);
      return d;
    } catch {
      if (path.dirname(d) === d) return d;
    }
  }
}

/**
 * Refuses a target directory that a symlink already in the destination leads elsewhere: the
 * path check alone cannot see those.
 */
async function ensureInside(destRoot: string, dir: string, artifactPath: string): Promise<void> {
  const [realRoot, realDir] = await Promise.all([realpath(destRoot), realpath(dir)]);
  if (realDir !== realRoot && !realDir.startsWith(realRoot + path.sep)) {
    throw new StoreError(
      "ARTIFACT_DOWNLOADER_OUTSIDE_DEST",
      `could not download ${artifactPath}: its directory leads outside the destination through a symlink`,
    );
  }
}
