import picomatch from "picomatch";
import type { TreeFilter } from "./types.ts";

/** Compiled include/exclude globs of a `TreeFilter`, applied to root-relative `/` paths. */
export interface PathFilter {
  /** True when a file at this relative path should be reported. */
  includesFile(relativePath: string): boolean;
  /** True when this relative path (file or directory) is excluded; directories are pruned. */
  excludes(relativePath: string): boolean;
}

/**
 * Compiles a filter's globs once; `dot: true` so that `**` also matches dot files, and the
 * regex flag `s` so that `*` also matches a newline, which file names may hold.
 */
export function compileFilter(filter: TreeFilter): PathFilter {
  const include = filter.include?.length ? filter.include : ["**"];
  const exclude = filter.exclude ?? [];
  const options = { dot: true, flags: "s" };
  const isIncluded = picomatch([...include], options);
  const isExcluded = exclude.length > 0 ? picomatch([...exclude], options) : () => false;
  return {
    includesFile: (p) => isIncluded(p) && !isExcluded(p),
    excludes: (p) => isExcluded(p),
  };
}
