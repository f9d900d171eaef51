import { setTimeout as sleep } from "node:timers/promises";
import { type ArtifactStore, mapLimit, type UploadResult } from "@buildpod/artifact-store";
import type { FileInfo } from "@buildpod/volume-watch";
import { type Prepared, prepare, realRoot, sameState } from "./prepare.ts";

export interface UploaderOptions {
  store: ArtifactStore;
  root: string;
  /** Files per create call; the agent uses 30 (reference §1). */
  batchSize: number;
  /** Batches in flight at once (each transfers up to the store's concurrency of files). */
  batches: number;
  /** Wait before a file whose upload failed retryably is tried again. */
  retryDelayMs: number;
  contentType?: string;
  onEvent?: (event: UploaderEvent) => void;
}

/** What the run logs and counts; the uploader itself never prints. */
export type UploaderEvent =
  | { type: "uploaded"; path: string; bytes: number; reupload: boolean }
  | { type: "failed"; path: string; err: Error; willRetry: boolean }
  | { type: "refused"; path: string; err: Error }
  | { type: "vanished"; path: string }
  | { type: "changed"; path: string };

/** The final account of a run. */
export interface UploaderReport {
  uploaded: number;
  bytes: number;
  /** Files uploaded again at the drain because they changed after their first upload. */
  reuploaded: string[];
  /** Files never uploaded: still queued, in flight or failing when the drain ended. */
  leftOver: string[];
  /**
   * Files refused for good (not a regular file below the root, too large, a 4xx), each once
   * with its latest error; a file whose later version uploaded is not listed.
   */
  refused: { path: string; error: string }[];
  /** Files that were seen (or queued) but deleted before they could be read. */
  vanished: number;
}

interface Queued {
  file: FileInfo;
  notBefore: number;
  reupload: boolean;
}

/**
 * The upload queue. `enqueue` takes files as they complete; batches of up to `batchSize` go to
 * the store at once, up to `batches` of them in flight. Each file is uploaded once per state:
 * a file that changes after its upload is held back and uploaded again at the drain. Files
 * whose upload failed retryably go back into the queue after `retryDelayMs`.
 */
export class Uploader {
  private readonly o: UploaderOptions;
  private readonly queue = new Map<string, Queued>();
  private readonly inFlight = new Map<string, FileInfo>();
  /** The newest state seen of a file while it was in flight. */
  private readonly newer = new Map<string, FileInfo>();
  private readonly uploaded = new Map<string, FileInfo>();
  /** Changed after upload; uploaded again at the drain. */
  private readonly changed = new Map<string, FileInfo>();
  /** Refused paths and why (the latest refusal); a path whose later version uploaded leaves. */
  private readonly refused = new Map<string, string>();
  private readonly report: UploaderReport = {
    uploaded: 0,
    bytes: 0,
    reuploaded: [],
    leftOver: [],
    refused: [],
    vanished: 0,
  };
  private readonly stop = new AbortController();
  private active = 0;
  /** Whether a queued file waits for a retry time (see scheduleWake). */
  private delayed = false;
  private draining = false;
  private wake?: NodeJS.Timeout;
  private pumpSoon?: NodeJS.Immediate;
  private idle = Promise.withResolvers<void>();
  /** The root's real path once known; small files are then read without the thread pool. */
  private rootReal?: string;

  constructor(options: UploaderOptions) {
    this.o = options;
  }

  /** Files waiting or in flight, for the pending gauge. */
  get pending(): number {
    return this.queue.size + this.inFlight.size + this.changed.size;
  }

  /** Takes a file that is complete in the state `file` describes. */
  enqueue(file: FileInfo): void {
    if (this.admit(file)) this.schedulePump();
  }

  /** Queues `file` unless it is in flight or already uploaded in this state; true if queued. */
  private admit(file: FileInfo): boolean {
    if (this.inFlight.has(file.path)) {
      this.newer.set(file.path, file);
      return false;
    }
    const done = this.uploaded.get(file.path);
    if (done && sameState(done, file)) return false;
    if (done && !this.draining) {
      this.changed.set(file.path, file);
      this.o.onEvent?.({ type: "changed", path: file.path });
      return false;
    }
    this.queue.set(file.path, { file, notBefore: 0, reupload: done !== undefined });
    return true;
  }

  /**
   * Pumps once after the files completing in this turn of the event loop are all queued, so
   * that they share batches instead of the first ones going alone.
   */
  private schedulePump(): void {
    if (this.pumpSoon) return;
    this.pumpSoon = setImmediate(() => {
      this.pumpSoon = undefined;
      this.pump();
    });
  }

  /**
   * Records a file the watcher would not hand over (a symlink leading outside the root, a FIFO):
   * it is listed as refused, once per path.
   */
  refuse(path: string, why: string): void {
    if (!this.refused.has(path)) this.refused.set(path, why);
  }

  /** A file was deleted: it no longer needs uploading. One still queued has vanished. */
  forget(path: string): void {
    if (this.queue.delete(path)) {
      this.report.vanished++;
      this.o.onEvent?.({ type: "vanished", path });
    }
    this.changed.delete(path);
  }

  /**
   * Enters the drain without waiting: files that changed after their upload and `files` are
   * queued (and start uploading) at once. `drain` may add more later.
   */
  startDrain(files: FileInfo[]): void {
    this.draining = true;
    for (const [path, file] of this.changed) {
      this.queue.set(path, { file, notBefore: 0, reupload: true });
    }
    this.changed.clear();
    for (const file of files) this.admit(file);
    this.pump();
  }

  /**
   * The drain: queues `swept` (the final sweep) and the files that changed after upload, then
   * resolves once everything is uploaded or `deadline` aborts. In-flight transfers are
   * aborted at the deadline; whatever is not uploaded then is listed in `leftOver`.
   */
  async drain(swept: FileInfo[], deadline: AbortSignal): Promise<UploaderReport> {
    this.startDrain(swept);
    // Failing files are retried at once during the drain: the deadline bounds the effort.
    for (const q of this.queue.values()) q.notBefore = 0;
    this.pump();

    const onAbort = () => this.stop.abort();
    deadline.addEventListener("abort", onAbort, { once: true });
    if (deadline.aborted) onAbort();
    const aborted = new Promise<void>((resolve) =>
      this.stop.signal.addEventListener("abort", () => resolve()),
    );
    await Promise.race([this.whenIdle(), aborted]);
    await this.whenSettled();
    deadline.removeEventListener("abort", onAbort);
    clearTimeout(this.wake);
    clearImmediate(this.pumpSoon);

    this.report.leftOver = [...new Set([...this.queue.keys(), ...this.inFlight.keys()])].sort();
    this.report.refused = [...this.refused].map(([path, error]) => ({ path, error }));
    return this.report;
  }

  private whenIdle(): Promise<void> {
    if (this.queue.size === 0 && this.active === 0) return Promise.resolve();
    return this.idle.promise;
  }

  /** After an abort, waits for in-flight batches to notice it and hand their files back. */
  private async whenSettled(): Promise<void> {
    while (this.active > 0) await sleep(20);
  }

  /** Starts batches while there is capacity and work that is due. */
  private pump(): void {
    if (this.stop.signal.aborted) return;
    while (this.active < this.o.batches) {
      const batch = this.takeDue();
      if (batch.length === 0) break;
      this.active++;
      void this.runBatch(batch).finally(() => {
        this.active--;
        this.pump();
        if (this.queue.size === 0 && this.active === 0) {
          this.idle.resolve();
          this.idle = Promise.withResolvers<void>();
        }
      });
    }
    this.scheduleWake();
  }

  private takeDue(): Queued[] {
    const now = Date.now();
    const batch: Queued[] = [];
    for (const [path, q] of this.queue) {
      if (q.notBefore > now) continue;
      this.queue.delete(path);
      this.inFlight.set(path, q.file);
      batch.push(q);
      if (batch.length >= this.o.batchSize) break;
    }
    return batch;
  }

  /**
   * Wakes the pump when the earliest delayed retry becomes due. Only retries are delayed, so
   * the queue is scanned only while some exist (a scan per pump would be quadratic).
   */
  private scheduleWake(): void {
    if (!this.delayed) return;
    clearTimeout(this.wake);
    const now = Date.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const q of this.queue.values()) {
      if (q.notBefore > now) earliest = Math.min(earliest, q.notBefore);
    }
    this.delayed = earliest !== Number.POSITIVE_INFINITY;
    if (!this.delayed) return;
    const wait = Math.max(10, earliest - now);
    this.wake = setTimeout(() => this.pump(), wait);
    // While watching, the watcher keeps the process alive. During the drain this timer may be
    // all that is left (the drain deadline's timer is unref'd): unref'd, the process would end
    // there, with exit code 0 and neither summary nor status file.
    if (!this.draining) this.wake.unref();
  }

  private async runBatch(batch: Queued[]): Promise<void> {
    const prepared = await mapLimit(batch, 8, (q) => this.open(q));
    const ready = prepared.filter((p): p is Prepared & { q: Queued } => p !== undefined);
    try {
      if (ready.length === 0) return;
      const results = await this.o.store.uploadBatch(
        ready.map((p) => p.source),
        this.stop.signal,
      );
      const byPath = new Map(ready.map((p) => [p.source.path, p]));
      for (const r of results) {
        const p = byPath.get(r.path);
        if (p) this.settle(p, r);
      }
    } catch (err) {
      // uploadBatch reports per-file failures itself; this is an unexpected throw (no job ID).
      for (const p of ready) this.fail(p.q, err as Error, false);
    } finally {
      await Promise.all(ready.map((p) => p.close()));
      for (const q of batch) this.inFlight.delete(q.file.path);
    }
  }

  /** Opens and hashes one file; undefined when it vanished or was refused (both reported). */
  private async open(q: Queued): Promise<(Prepared & { q: Queued }) | undefined> {
    try {
      this.rootReal ??= await realRoot(this.o.root).catch(() => undefined);
      const { root, contentType } = this.o;
      const prepared = await prepare(root, q.file, contentType, this.stop.signal, this.rootReal);
      return { ...prepared, q };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ENOENT") {
        this.report.vanished++;
        this.o.onEvent?.({ type: "vanished", path: q.file.path });
      } else if (code === "EOUTSIDEROOT" || code === "ENOTREGULAR" || code === "ELOOP") {
        this.refused.set(q.file.path, (err as Error).message);
        this.o.onEvent?.({ type: "refused", path: q.file.path, err: err as Error });
      } else {
        this.fail(q, err as Error, true);
      }
      return undefined;
    }
  }

  private settle(p: Prepared & { q: Queued }, r: UploadResult): void {
    const path = p.source.path;
    if (!r.ok) {
      // An upload cut short by the drain deadline is left over, not refused.
      if (r.retryable || this.stop.signal.aborted) this.fail(p.q, r.error, true);
      else {
        this.refused.set(path, r.error.message);
        this.o.onEvent?.({ type: "refused", path, err: r.error });
      }
      return;
    }
    this.uploaded.set(path, p.info);
    this.refused.delete(path);
    this.report.uploaded++;
    this.report.bytes += r.bytes;
    if (p.q.reupload) this.report.reuploaded.push(path);
    this.o.onEvent?.({ type: "uploaded", path, bytes: r.bytes, reupload: p.q.reupload });
    const newer = this.newer.get(path);
    this.newer.delete(path);
    if (newer && !sameState(newer, p.info)) {
      this.inFlight.delete(path);
      this.enqueue(newer);
    }
  }

  /** Puts a file back for a later attempt (or, when aborted, leaves it as left over). */
  private fail(q: Queued, err: Error, retryable: boolean): void {
    const path = q.file.path;
    const willRetry = retryable && !this.stop.signal.aborted;
    this.o.onEvent?.({ type: "failed", path, err, willRetry });
    if (!retryable) {
      this.refused.set(path, err.message);
      return;
    }
    const file = this.newer.get(path) ?? q.file;
    this.newer.delete(path);
    const delay = this.draining ? Math.min(this.o.retryDelayMs, 1_000) : this.o.retryDelayMs;
    this.queue.set(path, { file, notBefore: Date.now() + delay, reupload: q.reupload });
    this.delayed = true;
  }
}
