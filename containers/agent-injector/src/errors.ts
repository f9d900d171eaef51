/**
 * The one error class agent-injector's modules throw for failures a user can act on. `reason`
 * is a stable short code (tests and the status file use it); the message says what failed and
 * what to check, in the project's "could not <verb> <object>: <why>; <what to do>" form.
 */
export class InjectorError extends Error {
  override name = "InjectorError";
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
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
