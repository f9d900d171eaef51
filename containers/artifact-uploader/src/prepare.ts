import {
  contentTypeFor,
  digestHandle,
  readRange,
  type UploadSource,
} from "@buildpod/artifact-store";
import { type FileInfo, openInsideRoot } from "@buildpod/volume-watch";

/** A file opened and hashed, ready for the store; `close()` releases its handle. */
export interface Prepared {
  source: UploadSource;
  /** The file's state when opened (size, mtime, identity), to notice later changes. */
  info: FileInfo;
  close(): Promise<void>;
}

/**
 * Opens `file` below `root` safely (a symlink swapped in that leads outside, or a FIFO, is
 * refused by `openInsideRoot`), then hashes it with SHA-1 and SHA-256 in one streaming pass
 * through the open handle. The upload later reads the same handle, so what is sent is the file
 * that was hashed, even if the path is replaced meanwhile; a small file's bytes are kept from
 * the hashing read and sent from memory. Memory stays at one read chunk per large file.
 */
export async function prepare(
  root: string,
  file: FileInfo,
  contentTypeOverride?: string,
  signal?: AbortSignal,
): Promise<Prepared> {
  const opened = await openInsideRoot(root, file.path);
  const { handle } = opened;
  try {
    const digest = await digestHandle(handle, opened.info.size, signal, true);
    const source: UploadSource = {
      path: file.path,
      absolutePath: file.absolutePath,
      size: digest.size,
      sha1: digest.sha1,
      sha256: digest.sha256,
      contentType: contentTypeFor(file.path, contentTypeOverride),
      read: (start, end) => readRange(handle, start, end),
      content: digest.content,
    };
    return { source, info: opened.info, close: () => handle.close() };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** True when two observations are of the same file in the same state. */
export function sameState(a: FileInfo, b: FileInfo): boolean {
  return a.id === b.id && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
