import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Bytes moved between two young-generation collections. Small enough that the dead chunks of a
 * transfer stay a few MiB above the process's base; large enough that the collections (about a
 * millisecond each) cost a few percent of the CPU a gigabyte takes.
 */
export const BYTES_PER_COLLECTION = 8 * 1024 * 1024;

type Collect = (options: { type: "minor" | "major" }) => void;

let collect: Collect | null | undefined;
let moved = 0;

/**
 * Notes that `bytes` passed through freshly allocated buffers (a chunk read from a file or a
 * socket) and frees the dead ones every `BYTES_PER_COLLECTION` bytes.
 *
 * Why: every chunk of a transfer is a new buffer outside the JavaScript heap, and V8 collects
 * those only at a garbage collection, which it starts for them once about 64 MiB more is held
 * than after the previous one. Moving a 1 GiB file thus carried 60 to 80 MiB of dead chunks on
 * top of the process's base (measured with `process.memoryUsage().arrayBuffers`), against the
 * 128 MiB bound of issue 4. A young-generation collection frees them while they are young.
 */
export function noteBuffers(bytes: number): void {
  moved += bytes;
  if (moved < BYTES_PER_COLLECTION) return;
  moved = 0;
  collector()?.({ type: "minor" });
}

/**
 * V8 offers a collection to scripts only with `--expose-gc`. The flag is set here and the
 * function taken from a fresh context, which is the only one that gets it, so the bundles need
 * no Node flags and the process's own global stays as it was. When that fails, nothing is
 * collected early and memory is as without this module.
 */
function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as unknown;
    collect = typeof gc === "function" ? (gc as Collect) : null;
  } catch {
    collect = null;
  }
  return collect;
}
