import {
  type FileInfo,
  type TreeFilter,
  type VolumeWatchWarning,
  walk,
} from "@buildpod/volume-watch";

/** Files handed over at once by the sweep: enough to fill every batch in flight. */
export const SWEEP_GROUP = 120;

/**
 * The drain's final sweep: walks the whole tree with the watcher's filters and safety rules
 * and hands over what it finds in groups of `SWEEP_GROUP`, so that uploads start while the
 * walk goes on and batches stay full. Aborting `signal` (the drain deadline) stops the walk
 * between directories: the drain goes on with what was handed over, and whatever the walk did
 * not reach is not known, so it cannot be listed as left over either. Returns the files found.
 */
export async function sweep(
  filter: TreeFilter,
  signal: AbortSignal,
  onFiles: (files: FileInfo[]) => void,
  onWarning: (warning: VolumeWatchWarning) => void,
): Promise<number> {
  let group: FileInfo[] = [];
  let found = 0;
  for await (const file of walk({ ...filter, signal, onWarning })) {
    found++;
    group.push(file);
    if (group.length < SWEEP_GROUP) continue;
    onFiles(group);
    group = [];
  }
  if (group.length > 0) onFiles(group);
  return found;
}
