import { ExitCode } from "./exit-codes.ts";

/**
 * The one error class that crosses program boundaries. `code` is a stable, prefixed identifier
 * (`REPO_MIRROR_UNKNOWN_COMMIT`) that users can search for; the message says what failed and
 * `hint` what to do. The CLI runner logs it and exits with `exitCode`.
 */
export class BuildpodError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint?: string;

  constructor(
    code: string,
    message: string,
    options: { exitCode?: number; hint?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "BuildpodError";
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.FAILED;
    this.hint = options.hint;
  }
}
