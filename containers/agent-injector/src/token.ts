/**
 * Finding and checking the job token (`BUILDKITE_AGENT_ACCESS_TOKEN`). Nothing here ever puts
 * the token's value into a message: errors say where the token came from and what is wrong.
 */
import { readFile } from "node:fs/promises";
import { errnoCode, InjectorError } from "./errors.ts";

/** Where a token was found, for messages ("file /secrets/token", "env BUILDKITE_..."). */
export interface FoundToken {
  token: string;
  from: string;
}

/** Visible ASCII only: what an HTTP `Authorization` header can carry unchanged. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * Reads the token from `file` when given, else from the env variable `envName`. Surrounding
 * whitespace (the trailing newline a Secret file usually has) is dropped.
 */
export async function findToken(
  file: string | undefined,
  env: Record<string, string | undefined>,
  envName = "BUILDKITE_AGENT_ACCESS_TOKEN",
): Promise<FoundToken> {
  if (file !== undefined) {
    const from = `file ${file}`;
    return { token: checkToken(await readTokenFile(file), from), from };
  }
  const value = env[envName];
  if (value === undefined || value.trim() === "") {
    throw new InjectorError(
      "token-missing",
      `could not find the job token: ${envName} is ${value === undefined ? "unset" : "empty"} ` +
        "and no token file was given; pass the job's token Secret as --token-file / " +
        `AGENT_INJECTOR_TOKEN_FILE, or set ${envName} in the pod spec`,
    );
  }
  return { token: checkToken(value, `env ${envName}`), from: `env ${envName}` };
}

async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = errnoCode(err) ?? "error";
    throw new InjectorError(
      "token-unreadable",
      `could not read the token file ${file}: ${code}; check that the Secret is mounted ` +
        "there and that its defaultMode lets this container's user read it",
      { cause: err },
    );
  }
  if (text.trim() === "") {
    throw new InjectorError(
      "token-missing",
      `could not use the token file ${file}: it is empty; check the Secret's key and that the ` +
        "job token was written into it",
    );
  }
  return text;
}

/** Returns the trimmed token, or throws "token-malformed" saying what is wrong with it. */
export function checkToken(raw: string, from: string): string {
  const token = raw.trim();
  if (!TOKEN_CHARS.test(token)) {
    throw new InjectorError(
      "token-malformed",
      `could not use the job token from ${from}: it contains whitespace, control or non-ASCII ` +
        "characters, so it is not a Buildkite token; check that the Secret holds only the token " +
        "(not a YAML/JSON document or several lines)",
    );
  }
  return token;
}
