import { EventEmitter } from "node:events";
import { stat } from "node:fs/promises";
import { AckTrack } from "./ack-track.ts";
import {
  type Checkpoint,
  CheckpointStore,
  FINGERPRINT_BYTES,
  fingerprintOf,
} from "./checkpoints.ts";
import { errorCode } from "./safety.ts";
import { TailReader } from "./tail-reader.ts";
import { type Issued, matchesHead, type Tailed, tailedFile } from "./tailed-file.ts";
import {
  settingsOf,
  type TailerEvents,
  type TailerOptions,
  type TailerSettings,
  type TailerStats,
} from "./tailer-options.ts";
import { TreeWatcher } from "./tree-watcher.ts";
import type { FileInfo, LineBatch, RawLines, TailFileEvent, VolumeWatchWarning } from "./types.ts";

/** What `next` (text) or `nextRaw` (bytes) hands out. */
type Batch = LineBatch | RawLines;

export type { TailerEvents, TailerOptions, TailerStats } from "./tailer-options.ts";

/**
 * Tails every file of a tree as lines, with checkpoints committed only on acknowledgement and
 * a byte budget that pauses reading while the consumer is behind. Pull batches with `next()`
 * or `for await`; acknowledge each delivered batch (or a prefix of it) with `ack`, in any
 * order; the checkpoint moves to the highest contiguously acknowledged offset of each file.
 *
 * Files are keyed by identity (dev:inode), not path: a file renamed to another included path
 * goes on being read where it was, and one reachable by two paths is read once.
 *
 * ```ts
 * const tailer = new Tailer({ root: "/logs", include: ["**\/*.log"], checkpointFile });
 * tailer.on("warning", (w) => log.warn(w)).on("file", (e) => log.info(e));
 * await tailer.start();
 * lifecycle.finished.then(() => tailer.drain());
 * for await (const batch of tailer) sink.send(batch.lines).then(() => tailer.ack(batch));
 * await sink.idle(); await tailer.close();
 * ```
 */
export class Tailer extends EventEmitter<TailerEvents> implements AsyncIterable<LineBatch> {
  private readonly options: TailerOptions;
  private readonly settings: TailerSettings;
  private readonly tree: TreeWatcher;
  private readonly store?: CheckpointStore;
  private readonly scratch: Buffer;
  private readonly files = new Map<string, Tailed>(); // by id
  private readonly byPath = new Map<string, Tailed>();
  private readonly issued = new WeakMap<Batch, Issued>();
  private readonly pathQueues = new Map<string, Promise<void>>();
  private restored = new Map<string, Checkpoint>();
  private initialScan = true;
  private cursor = 0;
  private unacked = 0;
  private bytesRead = 0;
  private linesRead = 0;
  private paused = false;
  private dirty = false;
  private draining = false;
  private drainScan?: Promise<void>;
  private ended = false;
  private closed = false;
  private wakeUp?: () => void;
  // A wake with nobody waiting yet (it came during a read) is kept for the next wait.
  private signalled = false;
  private pulling: Promise<unknown> = Promise.resolve();
  private saving: Promise<void> = Promise.resolve();
  private pollTimer?: NodeJS.Timeout;
  private checkpointTimer?: NodeJS.Timeout;

  constructor(options: TailerOptions) {
    super();
    this.options = options;
    this.settings = settingsOf(options);
    // One read buffer for all files: reads happen one at a time, so memory does not grow with
    // the number of files tailed.
    this.scratch = Buffer.allocUnsafe(this.settings.chunkSize + this.settings.maxLineBytes);
    this.tree = new TreeWatcher(options);
    if (options.checkpointFile) {
      this.store = new CheckpointStore(options.checkpointFile, (w) => this.emit("warning", w));
    }
    this.tree.on("add", (f) => this.onFound(f));
    this.tree.on("change", (f) => this.onFound(f));
    this.tree.on("unlink", (f) => this.onGone(f.path, f.id));
    this.tree.on("warning", (w) => this.emit("warning", w));
  }

  /** Restores checkpoints, starts watching, opens the files found. */
  async start(): Promise<void> {
    if (this.store) this.restored = await this.store.load();
    await this.tree.start();
    await this.settled();
    // Checkpoints of files that no longer exist are dropped with the next write.
    this.initialScan = false;
    this.restored.clear();
    this.dirty = true;
    this.pollTimer = setInterval(() => this.poll(), this.settings.pollIntervalMs).unref();
    this.checkpointTimer = setInterval(() => {
      if (this.dirty) void this.checkpoint();
    }, this.settings.checkpointIntervalMs).unref();
  }

  /**
   * The next batch of lines from any file (files take turns, one chunk each). Waits while no
   * file has new data or while the budget is used up. Returns `undefined` once the drain has
   * delivered everything (or after `close`). Concurrent calls are served one after another.
   */
  next(): Promise<LineBatch | undefined> {
    return this.serialPull(false) as Promise<LineBatch | undefined>;
  }

  /**
   * Like `next`, but the lines come as bytes and boundaries (`TailReader.readRaw`): no string
   * and no object per line. The batch's buffers are views of the tailer's read buffer, valid
   * only until the next `next`/`nextRaw` call: copy what you keep first. Acknowledge it with
   * `ack` like any batch (`upTo` is a line's end offset, `startOffset + starts[i + 1]`).
   */
  nextRaw(): Promise<RawLines | undefined> {
    return this.serialPull(true) as Promise<RawLines | undefined>;
  }

  private serialPull(raw: boolean): Promise<Batch | undefined> {
    const result = this.pulling.then(() => this.pull(raw));
    this.pulling = result.catch(() => undefined);
    return result;
  }

  [Symbol.asyncIterator](): AsyncIterator<LineBatch> {
    return {
      next: async () => {
        const value = await this.next();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
    };
  }

  /**
   * Acknowledges delivery of `batch` up to `upTo` (a line's `offset`; default the whole batch).
   * Acks may come in any order across batches; each file's checkpoint commits the highest
   * offset below which everything is acknowledged. Acking twice is harmless.
   * @throws when `batch` was not handed out by this tailer, or `upTo` is not a number
   */
  ack(batch: LineBatch | RawLines, upTo: number = batch.endOffset): void {
    if (!Number.isFinite(upTo)) {
      throw new RangeError(`could not acknowledge up to ${upTo}: expected a line's offset`);
    }
    const issued = this.issued.get(batch);
    if (!issued) {
      throw new Error(
        "could not acknowledge a batch: it was not handed out by this tailer; pass the batch object next() returned",
      );
    }
    const before = issued.track.committed;
    this.unacked -= issued.track.ack(issued.entry, upTo);
    if (issued.track.committed !== before && issued.track === issued.file.track) this.dirty = true;
    this.wake();
  }

  /**
   * Starts the drain: one final rescan, every file read to its current end, partial last lines
   * delivered (flagged `NO_NEWLINE`); then `next()` returns `undefined`.
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.drainScan = this.tree
      .rescan()
      .catch((err) =>
        this.warn("watch-error", `could not rescan for the drain: ${String(err)}`, undefined, err),
      )
      .then(() => this.settled())
      .then(() => {
        for (const f of this.files.values()) f.hasData = true;
      });
    this.wake();
  }

  /** Writes the checkpoint file now (if configured); resolves when written. */
  checkpoint(): Promise<void> {
    this.saving = this.saving.then(() => this.save());
    return this.saving;
  }

  /** Current counters, see `TailerStats`. */
  stats(): TailerStats {
    let pending = 0;
    let open = 0;
    for (const f of this.files.values()) {
      if (f.closed) continue;
      open++;
      pending += f.reader.pendingBytes;
    }
    return {
      bufferedBytes: this.unacked + pending,
      unackedBytes: this.unacked,
      paused: this.paused,
      files: open,
      bytesRead: this.bytesRead,
      linesRead: this.linesRead,
    };
  }

  /** Stops everything, writes the final checkpoint and closes all files. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    clearInterval(this.checkpointTimer);
    this.wake();
    await this.tree.close();
    await this.settled();
    await this.checkpoint();
    for (const f of this.files.values()) await this.closeFile(f, false);
  }

  // --- reading -----------------------------------------------------------------------------

  private async pull(raw: boolean): Promise<Batch | undefined> {
    for (;;) {
      if (this.closed || this.ended) return undefined;
      if (this.unacked >= this.settings.maxBufferedBytes) {
        this.paused = true;
        await this.waitForWake();
        continue;
      }
      this.paused = false;
      const batch = await this.readSome(raw);
      if (batch) return batch;
      if (this.draining) {
        await this.drainScan;
        const more = (await this.readSome(raw)) ?? (await this.flushOne(raw));
        if (more) return more;
        this.ended = true;
        return undefined;
      }
      await this.waitForWake();
    }
  }

  // Gives each file with possible new data one read, starting after the last file served.
  private async readSome(raw: boolean): Promise<Batch | undefined> {
    const order = [...this.files.values()];
    for (let i = 0; i < order.length; i++) {
      const file = order[(this.cursor + i) % order.length];
      if (file.closed || !file.hasData || this.waitsForPredecessor(file)) continue;
      const batch = await this.readFile(file, raw);
      if (batch) {
        this.cursor = (this.cursor + i + 1) % Math.max(1, order.length);
        return batch;
      }
    }
    return undefined;
  }

  private async readFile(file: Tailed, raw: boolean): Promise<Batch | undefined> {
    let batch: Batch | null;
    try {
      // A read that only extended a partial line has nothing to hand out: read on, or the
      // rest of a long line would wait for the next poll.
      do batch = raw ? await file.reader.readRaw() : await file.reader.read();
      while (batch !== null && lineCount(batch) === 0);
    } catch (err) {
      if (this.closed) return undefined; // closed under an in-flight read: nothing to report
      this.warn(
        "unreadable",
        `could not read ${file.path}: ${String(err)}; stopped tailing it`,
        file.path,
        err,
      );
      await this.closeFile(file, false);
      return undefined;
    }
    if (batch === null) {
      file.hasData = false;
      file.reachedEnd = true;
      if (this.shouldClose(file)) return this.finish(file, raw);
      return undefined;
    }
    file.reachedEnd = false;
    this.bytesRead += batch.endOffset - batch.startOffset;
    return this.issue(file, batch);
  }

  private issue(file: Tailed, batch: Batch): Batch {
    batch.path = file.path;
    const entry = file.track.add(batch.startOffset, batch.endOffset);
    this.issued.set(batch, { file, track: file.track, entry });
    this.unacked += batch.endOffset - batch.startOffset;
    this.linesRead += lineCount(batch);
    return batch;
  }

  // A detached file at its end: deliver its partial last line (nobody will complete it) and
  // close it.
  private async finish(file: Tailed, raw: boolean): Promise<Batch | undefined> {
    const last = raw ? file.reader.flushRaw() : file.reader.flush();
    await this.closeFile(file, true);
    return last ? this.issue(file, last) : undefined;
  }

  // The drain's last step: partial last lines, one file at a time.
  private async flushOne(raw: boolean): Promise<Batch | undefined> {
    for (const file of this.files.values()) {
      if (file.closed) continue;
      const last = raw ? file.reader.flushRaw() : file.reader.flush();
      if (last) return this.issue(file, last);
    }
    return undefined;
  }

  private shouldClose(file: Tailed): boolean {
    if (file.reader.deleted) return true;
    if (file.detachedAt === undefined) return false;
    if (this.draining) return true;
    return performance.now() - file.detachedAt >= this.settings.rotateWaitMs;
  }

  private waitsForPredecessor(file: Tailed): boolean {
    const before = file.predecessor;
    if (!before || before.closed || before.reachedEnd) {
      file.predecessor = undefined;
      return false;
    }
    return true;
  }

  // --- files appearing and disappearing ----------------------------------------------------

  private onFound(info: FileInfo): void {
    this.serial(info.path, () => this.found(info));
  }

  private onGone(path: string, id: string): void {
    this.serial(path, async () => {
      const file = this.byPath.get(path);
      // A file that moved to another watched path is not gone.
      if (file && file.id === id && file.path === path && file.detachedAt === undefined) {
        file.detachedAt = performance.now();
        file.hasData = true;
      }
      this.wake();
    });
  }

  private async found(info: FileInfo): Promise<void> {
    if (this.closed) return;
    // The file last seen at this path; it may have moved on to another path since.
    const previous = this.byPath.get(info.path);
    if (previous && !previous.closed && previous.id === info.id) {
      previous.path = info.path;
      previous.absolutePath = info.absolutePath;
      previous.detachedAt = undefined;
      previous.hasData = true;
      return this.wake();
    }
    const known = this.files.get(info.id);
    if (known && !known.closed) {
      // Renamed to another watched path (e.g. a rotated name the globs include): go on where
      // it was. Its old path keeps pointing to it, so that a new file there is a rotation.
      known.path = info.path;
      known.absolutePath = info.absolutePath;
      known.detachedAt = undefined;
      known.hasData = true;
      this.byPath.set(info.path, known);
    } else {
      const opened = await this.open(info);
      if (!opened) return;
      if (previous && !previous.closed) this.rotate(previous, opened, info.path);
      this.byPath.set(info.path, opened);
    }
    this.wake();
  }

  // A new file took `path` from `old`: read `old` to its end first. If `old` is not watched
  // under another path now, it is detached (closed once read and rotateWaitMs passed).
  private rotate(old: Tailed, replacement: Tailed, path: string): void {
    if (old.path === path) old.detachedAt ??= performance.now();
    // Whatever reached the old file before the new one appeared comes first.
    old.hasData = true;
    old.reachedEnd = false;
    replacement.predecessor = old;
    this.emit("file", { type: "rotated", path, fileId: old.id, newFileId: replacement.id });
  }

  private async open(info: FileInfo): Promise<Tailed | undefined> {
    let reader: TailReader;
    try {
      reader = await TailReader.open(info.absolutePath, {
        path: info.path,
        root: this.tree.root,
        chunkSize: this.settings.chunkSize,
        maxLineBytes: this.settings.maxLineBytes,
        scratch: this.scratch,
        onEvent: (e) => this.onReaderEvent(e),
      });
    } catch (err) {
      if (errorCode(err) !== "ENOENT") {
        this.warn(
          "unreadable",
          `could not open ${info.path} for tailing: ${String(err)}`,
          info.path,
          err,
        );
      }
      return undefined;
    }
    let head: Buffer;
    let start: { offset: number; restored: boolean };
    try {
      head = await reader.head(FINGERPRINT_BYTES);
      start = await this.startOffset(info, reader, head);
    } catch (err) {
      await reader.close();
      const message = `could not read the start of ${info.path}: ${String(err)}`;
      this.warn("unreadable", message, info.path, err);
      return undefined;
    }
    const { offset, restored } = start;
    reader.seek(offset);
    const file = tailedFile(reader, info, offset, head);
    this.files.set(file.id, file);
    this.dirty = true;
    this.emit("file", { type: "opened", path: file.path, fileId: file.id, offset, restored });
    return file;
  }

  // Where a file starts: its checkpoint if that matches, else its start (or end, see startAt).
  private async startOffset(
    info: FileInfo,
    reader: TailReader,
    head: Buffer,
  ): Promise<{ offset: number; restored: boolean }> {
    const saved = this.restored.get(reader.fileId);
    this.restored.delete(reader.fileId);
    if (saved && matchesHead(saved, head)) return { offset: saved.offset, restored: true };
    if (saved) {
      this.warn(
        "checkpoint-mismatch",
        `checkpoint of ${saved.path} matches the inode of ${info.path} but not its first bytes: the inode was reused or the file rewritten; reading ${info.path} from its start`,
        info.path,
      );
    }
    if (this.initialScan && this.options.startAt === "end")
      return { offset: await reader.size(), restored: false };
    return { offset: 0, restored: false };
  }

  private onReaderEvent(event: TailFileEvent): void {
    if (event.type === "truncated") {
      const file = this.files.get(event.fileId);
      if (file) {
        // Offsets before the truncation mean nothing any more: a new track starts at 0, and
        // acks still due for the old content only release budget.
        file.track = new AckTrack(0);
        file.fingerprint = { bytes: 0, hash: fingerprintOf(Buffer.alloc(0)).hash };
        this.dirty = true;
      }
    }
    this.emit("file", event);
  }

  private async closeFile(file: Tailed, report: boolean): Promise<void> {
    if (file.closed) return;
    file.closed = true;
    await file.reader.close().catch(() => undefined);
    for (const [path, f] of this.byPath) if (f === file) this.byPath.delete(path);
    this.files.delete(file.id);
    this.dirty = true;
    if (report)
      this.emit("file", {
        type: "closed",
        path: file.path,
        fileId: file.id,
        offset: file.reader.offset,
      });
  }

  // Kernel events can be missed; every poll lets each file try a read, and checks that the
  // path still leads to the same file (rotation, deletion).
  private poll(): void {
    for (const file of this.files.values()) {
      file.hasData = true;
      if (file.detachedAt !== undefined || file.closed) continue;
      const { path, id } = file;
      this.serial(path, async () => {
        try {
          const st = await stat(file.absolutePath, { bigint: true });
          if (`${st.dev}:${st.ino}` !== id) this.tree.rescan().catch(() => undefined);
        } catch (err) {
          if (errorCode(err) === "ENOENT") this.onGone(path, id);
        }
      });
    }
    this.wake();
  }

  // --- plumbing ----------------------------------------------------------------------------

  // Work on one path runs in order: an "add" still opening must not race the "unlink" after it.
  private serial(path: string, work: () => Promise<void>): void {
    const previous = this.pathQueues.get(path) ?? Promise.resolve();
    const next = previous
      .then(work)
      .catch((err) =>
        this.warn("unreadable", `could not follow ${path}: ${String(err)}`, path, err),
      );
    this.pathQueues.set(path, next);
    void next.then(() => {
      if (this.pathQueues.get(path) === next) this.pathQueues.delete(path);
    });
  }

  // Resolves once every queued per-path operation has finished.
  private async settled(): Promise<void> {
    while (this.pathQueues.size > 0) await Promise.all(this.pathQueues.values());
  }

  private async save(): Promise<void> {
    if (!this.store) return;
    this.dirty = false;
    const entries: Checkpoint[] = [];
    for (const file of this.files.values()) {
      if (file.closed) continue;
      await this.extendFingerprint(file);
      const { path, dev, ino, fingerprint } = file;
      entries.push({ path, dev, ino, fingerprint, offset: file.track.committed });
    }
    if (!(await this.store.save(entries))) this.dirty = true;
  }

  // The fingerprint covers the first FINGERPRINT_BYTES once the file has that many.
  private async extendFingerprint(file: Tailed): Promise<void> {
    if (file.fingerprint.bytes >= FINGERPRINT_BYTES) return;
    try {
      file.fingerprint = fingerprintOf(await file.reader.head(FINGERPRINT_BYTES));
    } catch {
      // the handle was closed meanwhile; its entry is dropped with the next write
    }
  }

  private waitForWake(): Promise<void> {
    if (this.signalled) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wakeUp = resolve;
    });
  }

  private wake(): void {
    const resolve = this.wakeUp;
    this.wakeUp = undefined;
    if (resolve) resolve();
    else this.signalled = true;
  }

  private warn(
    code: VolumeWatchWarning["code"],
    message: string,
    path?: string,
    cause?: unknown,
  ): void {
    this.emit("warning", { code, message, path, cause });
  }
}

function lineCount(batch: Batch): number {
  return "lines" in batch ? batch.lines.length : batch.count;
}
