import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";
import picomatch from "picomatch";
import { StoreError } from "./errors.ts";
import { mapLimit } from "./limit.ts";
import type {
  ArtifactStore,
  RemoteArtifact,
  SearchQuery,
  UploadResult,
  UploadSource,
} from "./types.ts";

/** Marks files being written; they are never listed and a crash leaves only these behind. */
const TEMP_MARK = ".buildpod-partial-";

/**
 * A plain directory tree as the store: artifact `a/b.txt` is the file `<root>/a/b.txt`. For
 * standalone use on a shared volume and for local pod runs. Builds, jobs and scopes do not
 * exist here: a search matches the query against every file. No checksums are kept, so a
 * search returns empty sums and the downloader checks sizes only.
 */
export class DirStore implements ArtifactStore {
  readonly name: string;
  readonly root: string;
  private readonly concurrency: number;

  constructor(options: { root: string; concurrency?: number }) {
    this.root = path.resolve(options.root);
    this.name = `dir:${this.root}`;
    this.concurrency = options.concurrency ?? 8;
  }

  async uploadBatch(files: UploadSource[], signal?: AbortSignal): Promise<UploadResult[]> {
    return mapLimit(files, this.concurrency, async (file) => {
      try {
        await this.copyIn(file, signal);
        return { path: file.path, ok: true, artifactId: file.path, bytes: file.size };
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        const retryable = !(err instanceof StoreError) && error.name !== "AbortError";
        return { path: file.path, ok: false, error, retryable };
      }
    });
  }

  /** Writes to a temp file beside the target, then renames it over the target. */
  private async copyIn(file: UploadSource, signal?: AbortSignal): Promise<void> {
    const target = path.resolve(this.root, file.path);
    if (!target.startsWith(this.root + path.sep)) {
      throw new StoreError(
        "ARTIFACT_STORE_PATH_OUTSIDE",
        `could not store ${file.path}: it would land outside ${this.root}`,
      );
    }
    await mkdir(path.dirname(target), { recursive: true });
    const temp = path.join(path.dirname(target), `${TEMP_MARK}${randomBytes(6).toString("hex")}`);
    try {
      if (file.content) await writeFile(temp, file.content, { signal });
      else await pipeline(file.read(0, file.size), createWriteStream(temp), { signal });
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async search(q: SearchQuery): Promise<RemoteArtifact[]> {
    const isMatch = q.query ? picomatch(q.query, { dot: true, flags: "s" }) : () => true;
    const found: RemoteArtifact[] = [];
    const root = await stat(this.root).catch(() => undefined);
    if (!root?.isDirectory()) {
      throw new StoreError(
        "ARTIFACT_STORE_DIR_MISSING",
        `could not search ${this.name}: no such directory; create it, or point the store at an existing one`,
      );
    }
    for (const rel of await listFiles(this.root)) {
      if (!isMatch(rel)) continue;
      const abs = path.join(this.root, rel);
      const st = await stat(abs);
      found.push({
        id: rel,
        path: rel,
        fileSize: st.size,
        sha1sum: "",
        sha256sum: "",
        jobId: "",
        createdAt: st.mtime.toISOString(),
        url: pathToFileURL(abs).toString(),
        contentType: "",
      });
    }
    return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async open(artifact: RemoteArtifact): Promise<Readable> {
    const abs = path.resolve(this.root, artifact.path);
    if (!abs.startsWith(this.root + path.sep)) {
      throw new StoreError(
        "ARTIFACT_STORE_PATH_OUTSIDE",
        `could not read ${artifact.path}: it lies outside ${this.root}`,
      );
    }
    const stream = createReadStream(abs);
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", reject);
    });
    return stream;
  }

  async close(): Promise<void> {}
}

/** Regular files under `root` as relative `/` paths; symlinks and temp files left out. */
async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith(TEMP_MARK))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
}
