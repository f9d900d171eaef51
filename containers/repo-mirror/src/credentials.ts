import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RepoUrl } from "./url.ts";

/**
 * Credentials as the options deliver them: secrets already read from their files at start
 * (the config library's `secret: true`), known_hosts as a path.
 */
export interface CredentialFiles {
  /** The private key's content. */
  sshKey?: string;
  knownHostsFile?: string;
  /** An HTTPS token (GitHub app/PAT, GitLab PAT, ...), sent as basic auth with `httpsUsername`. */
  httpsToken?: string;
  httpsUsername?: string;
}

/** Environment for git plus the secret values the logger must scrub. */
export interface PreparedCredentials {
  env: Record<string, string>;
  /** git config pairs to pass by environment (see `configEnv`). */
  config: Array<[string, string]>;
  secrets: string[];
  /** Removes the private copy of the SSH key. */
  dispose(): Promise<void>;
}

/**
 * Turns credential files into environment variables for git, so nothing lands in `.git/config`:
 * - SSH: GIT_SSH_COMMAND names a private 0600 copy of the key (ssh refuses keys that others can
 *   read, and Kubernetes mounts Secret files 0644 by default) and, if given, the known_hosts.
 * - HTTPS: an `Authorization` header through GIT_CONFIG_COUNT/KEY/VALUE, scoped to the origin's
 *   scheme and host (`http.<url>.extraHeader`), so submodules on other hosts never receive it.
 */
export async function prepareCredentials(
  files: CredentialFiles,
  url: RepoUrl,
): Promise<PreparedCredentials> {
  const env: Record<string, string> = {};
  const config: Array<[string, string]> = [];
  const secrets: string[] = [];
  let keyDir: string | undefined;

  if (files.sshKey || files.knownHostsFile) {
    const parts = ["ssh", "-o", "BatchMode=yes"];
    if (files.sshKey) {
      keyDir = await mkdtemp(join(tmpdir(), "repo-mirror-ssh-"));
      const key = join(keyDir, "id");
      // ssh wants the key to end with a newline, which trimming secret files may have removed.
      await writeFile(key, files.sshKey.endsWith("\n") ? files.sshKey : `${files.sshKey}\n`, {
        mode: 0o600,
      });
      parts.push("-i", shellQuote(key), "-o", "IdentitiesOnly=yes");
    }
    if (files.knownHostsFile) {
      parts.push("-o", `UserKnownHostsFile=${shellQuote(files.knownHostsFile)}`);
      parts.push("-o", "StrictHostKeyChecking=yes");
    }
    env.GIT_SSH_COMMAND = parts.join(" ");
  }

  let basic: { username: string; password: string } | undefined = url.credentials;
  if (files.httpsToken) {
    const token = files.httpsToken.trim();
    basic = { username: files.httpsUsername ?? "x-access-token", password: token };
  }
  if (basic && (url.transport === "https" || url.transport === "http")) {
    const value = Buffer.from(`${basic.username}:${basic.password}`).toString("base64");
    secrets.push(basic.password, value);
    config.push([
      `http.${url.transport}://${url.host}/.extraHeader`,
      `Authorization: Basic ${value}`,
    ]);
  } else if (basic) {
    secrets.push(basic.password);
  }

  return {
    env,
    config,
    secrets,
    dispose: async () => {
      if (keyDir) await rm(keyDir, { recursive: true, force: true });
    },
  };
}

/** git config given by environment (git 2.31+), inherited by every git child process. */
export function configEnv(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(pairs.length) };
  pairs.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
