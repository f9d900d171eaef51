/**
 * Merges the families of several files into one exposition, the way node_exporter's textfile
 * collector does, but reporting every conflict instead of dropping series silently.
 *
 * The rule: files are taken in order (the caller sorts them by name), and the first file that
 * defines a metric decides its TYPE, its HELP and the value of each series.
 * - TYPE differs, or a sample name is already produced by another family (e.g. a gauge `x_count`
 *   beside a histogram `x`): the later file's family is left out whole.
 * - HELP differs: the first HELP is kept and the later file's series are still used.
 * - The same series in two files: the first file's sample is kept.
 * Each conflict names both files and lines and the metric.
 */
import type { Family, Sample } from "./parse.ts";

export const CONFLICT_KINDS = ["type", "help", "duplicate"] as const;
export type ConflictKind = (typeof CONFLICT_KINDS)[number];

export interface Conflict {
  kind: ConflictKind;
  metric: string;
  file: string;
  line: number;
  /** Where the winning definition comes from. */
  firstFile: string;
  firstLine: number;
  /** For `duplicate`: how many series of this family were duplicates in `file`. */
  series?: number;
  message: string;
}

/** The families of one file, in the order the merge should prefer them. */
export interface FileFamilies {
  file: string;
  families: readonly Family[];
}

export interface MergedFamily {
  name: string;
  type: Family["type"];
  help?: string;
  samples: Sample[];
  /** Every file that contributed samples, in order. */
  files: string[];
  /** The parsed families the samples come from, in order. */
  sources: Family[];
  /** True when `samples` is exactly the sources' samples one after the other (nothing left out). */
  exact: boolean;
}

interface Entry extends MergedFamily {
  line: number;
  helpFile?: string;
  helpLine: number;
  /** Series identity -> file; built only when a second file contributes to this family. */
  seen?: Map<string, string>;
  shared: boolean;
}

export interface MergeResult {
  families: MergedFamily[];
  conflicts: Conflict[];
}

/** Merges files; families come out sorted by name, samples in file order. */
export function mergeFiles(files: readonly FileFamilies[]): MergeResult {
  const byName = new Map<string, Entry>();
  // Which family produces each sample name, so that `x_count` cannot come from two families.
  const sampleOwner = new Map<string, Entry>();
  const conflicts: Conflict[] = [];

  for (const { file, families } of files) {
    for (const f of families) {
      const entry = byName.get(f.name);
      if (entry === undefined) {
        const clash = sampleNames(f)
          .map((n) => sampleOwner.get(n))
          .find((e) => e !== undefined);
        if (clash !== undefined) {
          conflicts.push(
            typeConflict(f, file, clash, `its samples collide with ${clash.type} ${clash.name}`),
          );
          continue;
        }
        const created = newEntry(f, file);
        byName.set(f.name, created);
        for (const n of sampleNames(f)) sampleOwner.set(n, created);
        continue;
      }
      if (entry.type !== f.type) {
        conflicts.push(
          typeConflict(
            f,
            file,
            entry,
            `TYPE ${f.type} here but ${entry.type} in ${entry.files[0]}`,
          ),
        );
        continue;
      }
      mergeHelp(entry, f, file, conflicts);
      mergeSamples(entry, f, file, conflicts);
    }
  }

  const families = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    families: families.map(({ name, type, help, samples, files, sources, exact }) => ({
      name,
      type,
      help,
      samples,
      files,
      sources,
      exact,
    })),
    conflicts,
  };
}

function newEntry(f: Family, file: string): Entry {
  return {
    name: f.name,
    type: f.type,
    help: f.help,
    helpFile: f.help === undefined ? undefined : file,
    helpLine: f.line,
    // The file's own array is shared until a second file contributes (merging copies it).
    samples: f.samples as Sample[],
    files: [file],
    sources: [f],
    exact: true,
    line: f.line,
    shared: true,
  };
}

function sampleNames(f: Family): string[] {
  if (f.type === "histogram") return [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`];
  if (f.type === "summary") return [f.name, `${f.name}_sum`, `${f.name}_count`];
  return [f.name];
}

function typeConflict(f: Family, file: string, first: Entry, why: string): Conflict {
  return {
    kind: "type",
    metric: f.name,
    file,
    line: f.line,
    firstFile: first.files[0] as string,
    firstLine: first.line,
    message: `${why}; the metric from ${file} is left out`,
  };
}

function mergeHelp(entry: Entry, f: Family, file: string, conflicts: Conflict[]) {
  if (f.help === undefined || f.help === entry.help) return;
  if (entry.help === undefined) {
    entry.help = f.help;
    entry.helpFile = file;
    entry.helpLine = f.line;
    return;
  }
  conflicts.push({
    kind: "help",
    metric: f.name,
    file,
    line: f.line,
    firstFile: entry.helpFile as string,
    firstLine: entry.helpLine,
    message: `HELP differs from ${entry.helpFile}; the first HELP is kept, the series are used`,
  });
}

function mergeSamples(entry: Entry, f: Family, file: string, conflicts: Conflict[]) {
  if (entry.shared) {
    entry.samples = [...entry.samples];
    entry.shared = false;
  }
  const firstFile = entry.files[0] as string;
  entry.seen ??= new Map(entry.samples.map((s) => [s.series, firstFile]));
  let duplicates = 0;
  let first: Sample | undefined;
  for (const s of f.samples) {
    if (entry.seen.has(s.series)) {
      duplicates++;
      first ??= s;
      continue;
    }
    entry.seen.set(s.series, file);
    entry.samples.push(s);
  }
  if (duplicates < f.samples.length) entry.files.push(file);
  entry.sources.push(f);
  if (first === undefined) return;
  entry.exact = false;
  const original = entry.samples.find((s) => s.series === first.series) as Sample;
  const more = duplicates > 1 ? ` (and ${duplicates - 1} more series of this metric)` : "";
  conflicts.push({
    kind: "duplicate",
    metric: f.name,
    file,
    line: first.line,
    firstFile: entry.seen.get(first.series) as string,
    firstLine: original.line,
    series: duplicates,
    message: `series ${first.series} is already defined${more}; the first value is kept`,
  });
}
