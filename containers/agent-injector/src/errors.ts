import { BuildpodError, ExitCode } from "@buildpod/runtime";

/** Reasons that are the user's configuration, not a failed task: exit 2 like a config error. */
const CONFIG_REASONS = new Set([
  "token-missing",
  "token-malformed",
  "job-id-missing",
  "job-id-malformed",
]);

/**
 * The error agent-injector's modules throw for failures a user can act on. `reason` is a
 * stable short name (`token-rejected`); the BuildpodError `code` is its prefixed form
 * (`AGENT_INJECTOR_TOKEN_REJECTED`), which the runner logs and puts in the status file. The
 * message says what failed and what to check: "could not <verb> <object>: <why>; <what to do>".
 */
export class InjectorError extends BuildpodError {
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    const code = `AGENT_INJECTOR_${reason.toUpperCase().replaceAll("-", "_")}`;
    const exitCode = CONFIG_REASONS.has(reason)
      ? ExitCode.CONFIG
      : reason === "interrupted"
        ? ExitCode.INTERRUPTED
        : ExitCode.FAILED;
    super(code, message, { exitCode, cause: options?.cause });
    this.name = "InjectorError";
    this.reason = reason;
  }
}

/** The `code` of a Node.js system error (`ENOENT`, `EROFS`, ...), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Turns a failed write into the directory `dir` into an InjectorError naming the volume
 * problem (read-only, full, not permitted), or returns the error unchanged when it is none.
 */
export function describeWriteError(err: unknown, dir: string, what: string): unknown {
  if (err instanceof InjectorError) return err;
  const code = errnoCode(err);
  const why = (err as Error).message;
  switch (code) {
    case "EROFS":
      return new InjectorError(
        "dest-read-only",
        `could not write ${what} to ${dir}: the file system is read-only; mount the volume ` +
          "writable in this init container (readOnly: false) and read-only in the others",
        { cause: err },
      );
    case "ENOSPC":
    case "EDQUOT":
      return new InjectorError(
        "dest-full",
        `could not write ${what} to ${dir}: no space left on the volume (${code}); raise the ` +
          "emptyDir sizeLimit or free space on the node",
        { cause: err },
      );
    case "EACCES":
    case "EPERM":
      return new InjectorError(
        "dest-permission",
        `could not write ${what} to ${dir}: permission denied (${why}); run this init ` +
          "container as a user that may write the volume, or set fsGroup on the pod",
        { cause: err },
      );
    case "ENOTDIR":
    case "EEXIST":
      return new InjectorError(
        "dest-not-directory",
        `could not write ${what} to ${dir}: a path component is not a directory (${why}); ` +
          "point the option at a directory",
        { cause: err },
      );
    default:
      return err;
  }
}
