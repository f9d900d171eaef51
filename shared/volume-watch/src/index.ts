// @buildpod/volume-watch: watching shared volumes.
//
//   TreeWatcher        tree events (chokidar) + periodic rescan, include/exclude globs, safety
//   walk / walkAll     one pass over a tree with the same filters and safety (final sweep)
//   CompletionWatcher  "file complete" after a quiet period, plus the drain's final sweep
//   TailReader         one file's appended bytes as lines (truncation, deletion, long lines)
//   Tailer             a whole tree tailed with ack-committed checkpoints and a byte budget
//   CheckpointStore    the atomic JSON checkpoint file
//   openInsideRoot     open a file below a root safely (no escape, regular files only)
//
// Libraries never print or exit: warnings arrive as "warning" events or `onWarning` callbacks.

export {
  type Checkpoint,
  CheckpointStore,
  FINGERPRINT_BYTES,
  type Fingerprint,
  fingerprintFile,
} from "./checkpoints.ts";
export {
  CompletionWatcher,
  type CompletionWatcherEvents,
  type CompletionWatcherOptions,
} from "./completion.ts";
export { compileFilter, type PathFilter } from "./filter.ts";
export { type OpenedFile, openInsideRoot } from "./safety.ts";
export {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MAX_LINE_BYTES,
  TailReader,
  type TailReaderOptions,
} from "./tail-reader.ts";
export { Tailer, type TailerEvents, type TailerOptions, type TailerStats } from "./tailer.ts";
export { TreeWatcher, type TreeWatcherEvents, type TreeWatcherOptions } from "./tree-watcher.ts";
export {
  type FileInfo,
  type Line,
  type LineBatch,
  LineFlags,
  type RawLines,
  type TailFileEvent,
  type TreeFilter,
  type VolumeWatchWarning,
  type WarningCode,
  type WarningHandler,
} from "./types.ts";
export { type WalkOptions, walk, walkAll } from "./walk.ts";
