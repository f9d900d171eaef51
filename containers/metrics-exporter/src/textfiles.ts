/**
 * One directory of `*.prom` files, read whole and parsed only when a file changes.
 *
 * A file is used only whole: when it changes while being read, or its last line has no final
 * newline yet, the previous good version (if any) stays in use and the file is read again on the
 * next refresh. A file that stays incomplete past `settleMs` is reported as a problem. Writers
 * should write a temporary file and rename it (see the README).
 */
import { type FileInfo, openInsideRoot, walkAll } from "@buildpod/volume-watch";
import { type Family, type ParseProblem, parseExposition } from "./parse.ts";

/** The state of one file after a refresh. */
export interface TextFile {
  /** Name inside the directory, e.g. `build.prom`. */
  name: string;
  /** Path as shown in the `file` label and in messages: `<dir>/<name>`. */
  path: string;
  /**
   * ok: `families` is this version. stale: a newer version is incomplete or being written and
   * the previous good one is used meanwhile. pending: incomplete and nothing older to use.
   * invalid / unreadable: not used; see `problems`.
   */
  status: "ok" | "stale" | "pending" | "invalid" | "unreadable";
  /** The families in use (empty unless ok or stale). */
  families: readonly Family[];
  /** Modification time of the version in use, in seconds. */
  mtimeSeconds: number;
  /** Problems of the current version (for stale/pending: why it is not used yet). */
  problems: readonly ParseProblem[];
  /** Samples with a timestamp in the version in use. */
  timestamps: number;
  /** Size of the version in use, in bytes. */
  bytes: number;
}

export interface RefreshResult {
  /** Files sorted by name: the order of the conflict rule. */
  files: TextFile[];
  /** True when anything used (families, mtimes, problems) differs from the last refresh. */
  changed: boolean;
  /** True when a file should be read again soon (incomplete or changed while read). */
  retry: boolean;
  /** Problems listing the directory itself (it is fine for it not to exist). */
  warnings: string[];
}

export interface TextfileDirOptions {
  dir: string;
  /** How long a file may stay incomplete before that counts as a problem. Default 5 000. */
  settleMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface Cached {
  stamp: string;
  file: TextFile;
  /** When the current incomplete state was first seen. */
  incompleteSince?: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const stampOf = (i: FileInfo) => `${i.id}:${i.size}:${i.mtimeMs}`;

/** Keeps the parsed state of one directory of `*.prom` files. */
export class TextfileDir {
  readonly dir: string;
  readonly settleMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, Cached>();

  constructor(opts: TextfileDirOptions) {
    this.dir = opts.dir.replace(/\/+$/, "");
    this.settleMs = opts.settleMs ?? 5000;
    this.now = opts.now ?? Date.now;
  }

  /** Lists the directory, reads files whose size, mtime or identity changed, and parses them. */
  async refresh(): Promise<RefreshResult> {
    const warnings: string[] = [];
    const listed = await this.list(warnings);
    let changed = false;
    let retry = false;

    for (const name of this.cache.keys()) {
      if (!listed.has(name)) {
        this.cache.delete(name);
        changed = true;
      }
    }
    for (const [name, info] of listed) {
      const cached = this.cache.get(name);
      if (cached !== undefined && cached.stamp === stampOf(info) && !isRetry(cached.file)) continue;
      const next = await this.read(name, info, cached);
      if (next.file !== cached?.file) changed = true;
      this.cache.set(name, next);
      retry ||= isRetry(next.file);
    }

    const files = [...this.cache.values()]
      .map((c) => c.file)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    return { files, changed, retry, warnings };
  }

  private async list(warnings: string[]): Promise<Map<string, FileInfo>> {
    const listed = new Map<string, FileInfo>();
    try {
      const infos = await walkAll({
        root: this.dir,
        include: ["*.prom"],
        onWarning: (w) => warnings.push(`${this.dir}/${w.path ?? ""}: ${w.message}`),
      });
      for (const info of infos) listed.set(info.path, info);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") {
        warnings.push(`could not list ${this.dir}: ${(err as Error).message}`);
      }
    }
    return listed;
  }

  /** Reads one file whole; keeps the previous good version while the new one is incomplete. */
  private async read(name: string, listed: FileInfo, cached: Cached | undefined): Promise<Cached> {
    const path = `${this.dir}/${name}`;
    let text: string;
    let info: FileInfo;
    try {
      const opened = await openInsideRoot(this.dir, name);
      try {
        info = opened.info;
        const bytes = await opened.handle.readFile();
        const after = await opened.handle.stat({ bigint: true });
        if (Number(after.mtimeNs) / 1e6 !== info.mtimeMs || Number(after.size) !== bytes.length) {
          return this.incomplete(name, path, cached, "the file changed while it was read");
        }
        text = decoder.decode(bytes);
      } finally {
        await opened.handle.close();
      }
    } catch (err) {
      const message =
        err instanceof TypeError
          ? "the file is not valid UTF-8"
          : `could not read the file: ${(err as Error).message}`;
      const file = rejected(name, path, "unreadable", message);
      if (err instanceof TypeError) file.status = "invalid";
      return { stamp: stampOf(listed), file };
    }

    const parsed = parseExposition(text, path);
    const stamp = stampOf(info);
    if (parsed.problems.some((p) => p.incomplete)) {
      const next = this.incomplete(name, path, cached, parsed.problems[0]?.message ?? "");
      return { ...next, stamp };
    }
    if (parsed.problems.length > 0) {
      return { stamp, file: { ...rejected(name, path, "invalid", ""), problems: parsed.problems } };
    }
    const file: TextFile = {
      name,
      path,
      status: "ok",
      families: parsed.families,
      // Whole seconds, as node_exporter 1.5 reports them.
      mtimeSeconds: Math.floor(info.mtimeMs / 1000),
      problems: [],
      timestamps: parsed.timestamps,
      bytes: text.length,
    };
    return { stamp, file };
  }

  /** A file not yet whole: keep the last good version, and complain once it takes too long. */
  private incomplete(name: string, path: string, cached: Cached | undefined, why: string): Cached {
    const since = cached?.incompleteSince ?? this.now();
    const late = this.now() - since >= this.settleMs;
    const problem: ParseProblem = {
      file: path,
      line: 0,
      message: late
        ? `${why}, for ${Math.round((this.now() - since) / 1000)}s; write a temporary file and rename it into place`
        : why,
      incomplete: true,
    };
    const previous = cached?.file;
    const usable =
      previous !== undefined && (previous.status === "ok" || previous.status === "stale");
    const file: TextFile = usable
      ? { ...previous, status: "stale", problems: late ? [problem] : [] }
      : { ...rejected(name, path, "pending", ""), problems: late ? [problem] : [] };
    // Same object when nothing visible changed, so that `changed` stays false.
    const same =
      previous !== undefined &&
      previous.status === file.status &&
      previous.problems.length === file.problems.length;
    return { stamp: "", file: same ? previous : file, incompleteSince: since };
  }
}

function rejected(
  name: string,
  path: string,
  status: TextFile["status"],
  message: string,
): TextFile {
  return {
    name,
    path,
    status,
    families: [],
    mtimeSeconds: 0,
    problems: message === "" ? [] : [{ file: path, line: 0, message }],
    timestamps: 0,
    bytes: 0,
  };
}

function isRetry(file: TextFile): boolean {
  return file.status === "stale" || file.status === "pending";
}
