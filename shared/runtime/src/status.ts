import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** What every container records at exit: one JSON line on stdout and the status file. */
export interface StatusRecord {
  container: string;
  command: string;
  version: string;
  exit_code: number;
  exit_reason: string;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  summary: Record<string, unknown>;
}

/**
 * Writes `<lifecycleDir>/status/<container>.json` atomically (temp file, fsync, rename). A
 * native sidecar's exit code never reaches the pod's phase, so this file is how the workload, a
 * later step or the local runner learns whether a sidecar delivered everything. Returns the path
 * written, or undefined when the lifecycle directory does not exist (a run outside a pod).
 * `scrub` takes the secrets out of the serialised record, as the logger does for its lines.
 */
export async function writeStatus(
  lifecycleDir: string,
  record: StatusRecord,
  scrub: (text: string) => string = (text) => text,
): Promise<string | undefined> {
  const exists = await stat(lifecycleDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) return undefined;
  const dir = join(lifecycleDir, "status");
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${record.container}.json`);
  await writeFileAtomic(path, `${scrub(JSON.stringify(record, null, 2))}\n`);
  return path;
}

/**
 * Writes a whole file so that readers see either the old content or the new, never a part: a
 * temp file beside it is written, fsynced and renamed over the target (rename is atomic within
 * one filesystem, POSIX rename(2)); the directory is then fsynced so the rename survives a crash.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644) {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

async function syncDirectory(dir: string): Promise<void> {
  // Some filesystems refuse fsync on a directory (EINVAL, EISDIR); the rename is done by then.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {}
}
