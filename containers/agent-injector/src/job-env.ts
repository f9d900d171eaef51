/**
 * Writing the job's environment for the workload and the sidecars, in three forms under the
 * lifecycle volume's `env/` directory:
 *   buildkite.env   POSIX shell, `. buildkite.env` exports every variable (see shell-env.ts)
 *   buildkite.json  one flat JSON object of strings, the form BUILDKITE_ENV_JSON_FILE uses
 *   token           the job token alone, for artifact-uploader/-downloader and custom sidecars
 * Files are 0600 (0640 with groupReadable, for sidecars that share the pod's fsGroup but not the
 * workload's uid), the directory 0700 (0750), so no other user on the node's volume reads them.
 */
import { chmod, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describeWriteError, errnoCode, InjectorError } from "./errors.ts";
import { chownOrExplain, type Owner, writeFileAtomic } from "./files.ts";
import { renderShellEnv } from "./shell-env.ts";

export const TOKEN_VARIABLE = "BUILDKITE_AGENT_ACCESS_TOKEN";

export interface JobEnvOptions {
  /** The directory to write, normally `${BUILDPOD_LIFECYCLE_DIR}/env`. */
  dir: string;
  /** The job's variables (without the token). */
  vars: Record<string, string>;
  token: string;
  groupReadable: boolean;
  owner?: Owner;
}

export interface WrittenJobEnv {
  shellFile: string;
  jsonFile: string;
  tokenFile: string;
  /** How many variables were written (the token included). */
  variables: number;
  /** Names not written to the shell file because they are not shell identifiers. */
  skipped: string[];
}

/** Writes the three files atomically; throws InjectorError when the volume refuses. */
export async function writeJobEnv(options: JobEnvOptions): Promise<WrittenJobEnv> {
  const { dir, owner } = options;
  const vars = { ...options.vars, [TOKEN_VARIABLE]: options.token };
  const fileMode = options.groupReadable ? 0o640 : 0o600;
  const shell = renderShellEnv(vars);
  const written: WrittenJobEnv = {
    shellFile: join(dir, "buildkite.env"),
    jsonFile: join(dir, "buildkite.json"),
    tokenFile: join(dir, "token"),
    variables: Object.keys(vars).length,
    skipped: shell.skipped,
  };

  let current = dir;
  try {
    await mkdir(dir, { recursive: true });
    await chmod(dir, options.groupReadable ? 0o750 : 0o700);
    if (owner) await chownOrExplain(dir, dir, owner);
    const write = (path: string, text: string) => {
      current = path;
      return writeFileAtomic(path, text, { mode: fileMode, owner });
    };
    // The token file first and the shell file last: a reader polling for buildkite.env finds
    // the other two already in place.
    await write(written.tokenFile, options.token);
    await write(written.jsonFile, `${JSON.stringify(vars, null, 2)}\n`);
    await write(written.shellFile, shell.text);
  } catch (err) {
    throw describeWriteError(err, dir, current === dir ? "the env directory" : current);
  }
  return written;
}

/**
 * Reads back the JSON file `writeJobEnv` wrote in `dir` (for `run`); an empty object when
 * there is none, an InjectorError when it is not a flat object of strings.
 */
export async function readJobEnv(dir: string): Promise<Record<string, string>> {
  const file = join(dir, "buildkite.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return {};
    throw new InjectorError("env-unreadable", `could not read ${file}: ${errnoCode(err)}`, {
      cause: err,
    });
  }
  const parsed = (() => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  })();
  const isFlat =
    typeof parsed === "object" &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    Object.values(parsed).every((v) => typeof v === "string");
  if (!isFlat) {
    throw new InjectorError(
      "env-unreadable",
      `could not read ${file}: not a JSON object of strings; let agent-injector inject write it`,
    );
  }
  return parsed as Record<string, string>;
}
