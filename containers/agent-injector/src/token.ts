/**
 * Checking the job token (`BUILDKITE_AGENT_ACCESS_TOKEN`) before it is used. Nothing here puts
 * the token's value into a message: errors say where the token came from and what is wrong.
 */
import { readFile } from "node:fs/promises";
import { errnoCode, InjectorError } from "./errors.ts";

/** Visible ASCII only: what an HTTP `Authorization` header can carry unchanged. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/** How to hand the token over, for the "missing" message. */
export const TOKEN_WAYS =
  "mount the job's token Secret and pass --token-file / AGENT_INJECTOR_TOKEN_FILE, or set " +
  "BUILDKITE_AGENT_ACCESS_TOKEN in the pod spec (e.g. from a secretKeyRef)";

/**
 * Returns the token with surrounding whitespace dropped (the trailing newline a Secret file
 * often has), or throws "token-missing" / "token-malformed". `from` names where it was looked
 * for, e.g. "the token file /x" or "BUILDKITE_AGENT_ACCESS_TOKEN or --token-file".
 */
export function checkToken(raw: string | undefined, from: string): string {
  const token = raw?.trim() ?? "";
  if (token === "") {
    const got = raw === undefined ? "gave no token" : "holds only whitespace";
    throw new InjectorError(
      "token-missing",
      `could not find the job token: ${from} ${got}; ${TOKEN_WAYS}`,
    );
  }
  if (!TOKEN_CHARS.test(token)) {
    throw new InjectorError(
      "token-malformed",
      `could not use the job token from ${from}: it contains whitespace, control or non-ASCII ` +
        "characters, so it is not a Buildkite token; check that the Secret holds only the token " +
        "(not a YAML or JSON document, not several lines)",
    );
  }
  return token;
}

/** Reads a token file (e.g. the one `inject` wrote); undefined when it does not exist. */
export async function readTokenFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT") return undefined;
    throw new InjectorError(
      "token-unreadable",
      `could not read the token file ${file}: ${code ?? (err as Error).message}; check that ` +
        "this container runs as the user (or fsGroup) agent-injector inject wrote it for",
      { cause: err },
    );
  }
}
