/**
 * Copying executables from the image into a shared volume (the `inject` half that Tekton's and
 * Prow's "place the entrypoint" init containers also do): atomic, executable for any user, and
 * skipped when the volume already holds the same bytes, so re-running an init container is free.
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { describeWriteError, errnoCode, InjectorError } from "./errors.ts";
import { copyFileAtomic, type Owner, sha256File, writeFileAtomic } from "./files.ts";

export interface BinarySpec {
  /** Path of the executable inside this (the injector's) image. */
  source: string;
  /** File name to give it in the destination directory. */
  name: string;
  /** The checksum the image recorded at build time; a mismatch fails the copy. */
  expectedSha256?: string;
}

export interface InstallOptions {
  /** Destination directory (a shared volume); created if missing. */
  dest: string;
  /** Mode of installed files; 0o755 lets the workload's user, whoever it is, run them. */
  mode: number;
  owner?: Owner;
}

export interface InstallResult {
  name: string;
  source: string;
  path: string;
  sha256: string;
  bytes: number;
  /** False when the destination already held a file with the same checksum. */
  copied: boolean;
}

/** Installs one executable into `options.dest`; see the module comment for the guarantees. */
export async function installBinary(
  spec: BinarySpec,
  options: InstallOptions,
): Promise<InstallResult> {
  const sourceInfo = await statSource(spec.source);
  const sha256 = await sha256File(spec.source);
  if (spec.expectedSha256 !== undefined && spec.expectedSha256 !== sha256) {
    throw new InjectorError(
      "binary-corrupt",
      `could not copy ${spec.source}: its sha256 ${sha256} differs from ${spec.expectedSha256} ` +
        "recorded when the image was built; the image is damaged: pull it again or rebuild it",
    );
  }
  const path = join(options.dest, spec.name);
  const result = { name: spec.name, source: spec.source, path, sha256, bytes: sourceInfo.size };

  if (await sameContent(path, sourceInfo.size, sha256, options.mode)) {
    return { ...result, copied: false };
  }
  try {
    await mkdir(options.dest, { recursive: true, mode: 0o755 });
    await copyFileAtomic(spec.source, path, options);
  } catch (err) {
    throw describeWriteError(err, options.dest, spec.name);
  }
  return { ...result, copied: true };
}

async function statSource(source: string) {
  try {
    const info = await stat(source);
    if (!info.isFile()) {
      throw new InjectorError(
        "binary-not-file",
        `could not copy ${source}: it is not a regular file; point the option at the executable`,
      );
    }
    return info;
  } catch (err) {
    if (err instanceof InjectorError) throw err;
    const missing = errnoCode(err) === "ENOENT";
    throw new InjectorError(
      missing ? "binary-missing" : "binary-unreadable",
      `could not copy ${source}: ${missing ? "no such file in this image" : (err as Error).message}; ` +
        "check --agent-binary / --extra-binary and that the image was built with the binary",
      { cause: err },
    );
  }
}

/** Whether `path` exists with the wanted size, checksum and mode (so nothing needs copying). */
async function sameContent(path: string, size: number, sha256: string, mode: number) {
  try {
    const info = await stat(path);
    if (!info.isFile() || info.size !== size || (info.mode & 0o7777) !== mode) return false;
    return (await sha256File(path)) === sha256;
  } catch {
    return false;
  }
}

/**
 * Reads the version the image records beside the agent binary (`VERSION` in the same
 * directory, one line). Returns undefined when there is none: the copy does not depend on it.
 */
export async function readImageVersion(binary: string): Promise<string | undefined> {
  try {
    const text = (await readFile(join(dirname(binary), "VERSION"), "utf8")).trim();
    return text === "" ? undefined : text;
  } catch {
    return undefined;
  }
}

/**
 * Reads the checksum the image records beside the binary (`SHA256`, lines of
 * `<hex>  <file name>` as sha256sum writes them) for this binary's name, if there is one.
 */
export async function readImageChecksum(binary: string): Promise<string | undefined> {
  const text = await readFile(join(dirname(binary), "SHA256"), "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [hex, name] = line.trim().split(/\s+\*?/);
    if (name === basename(binary) && hex && /^[0-9a-f]{64}$/.test(hex)) return hex;
  }
  return undefined;
}

/** Records `version` as `<dest>/<name>.version` (skipped when the file already says so). */
export async function recordVersion(
  name: string,
  version: string,
  options: InstallOptions,
): Promise<string> {
  const path = join(options.dest, `${name}.version`);
  const text = `${version}\n`;
  const current = await readFile(path, "utf8").catch(() => undefined);
  if (current === text) return path;
  try {
    await writeFileAtomic(path, text, { mode: 0o644, owner: options.owner });
  } catch (err) {
    throw describeWriteError(err, options.dest, `${name}.version`);
  }
  return path;
}
