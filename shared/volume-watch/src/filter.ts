import picomatch from "picomatch";
import type { TreeFilter } from "./types.ts";

/** Compiled include/exclude globs of a `TreeFilter`, applied to root-relative `/` paths. */
export interface PathFilter {
  /** True when a file at this relative path should be reported. */
  includesFile(relativePath: string): boolean;
  /** True when this relative path (file or directory) is excluded; directories are pruned. */
  excludes(relativePath: string): boolean;
}

/** Compiles a filter's globs once; `dot: true` so that `**` also matches dot files. */
export function compileFilter(filter: TreeFilter): PathFilter {
  const include = filter.include?.length ? filter.include : ["**"];
  const exclude = filter.exclude ?? [];
  const isIncluded = picomatch([...include], { dot: true });
  const isExcluded = exclude.length > 0 ? picomatch([...exclude], { dot: true }) : () => false;
  return {
    includesFile: (p) => isIncluded(p) && !isExcluded(p),
    excludes: (p) => isExcluded(p),
  };
}
