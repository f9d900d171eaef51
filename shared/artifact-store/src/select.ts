import { readFile } from "node:fs/promises";
import path from "node:path";
import { BuildkiteStore, type BuildkiteStoreOptions, DEFAULT_ENDPOINT } from "./buildkite.ts";
import { DirStore } from "./dir.ts";
import { StoreError } from "./errors.ts";
import type { ArtifactStore } from "./types.ts";

/** `--store buildkite` or `--store dir:PATH`, parsed. */
export type StoreSpec = { kind: "buildkite" } | { kind: "dir"; root: string };

/** Whether `value` is a `--store` value `parseStoreSpec` takes: "buildkite" or "dir:PATH". */
export function isStoreSpec(value: string): boolean {
  return value === "buildkite" || (value.startsWith("dir:") && value.length > 4);
}

/** Parses a `--store` value; throws a StoreError naming the value and the accepted forms. */
export function parseStoreSpec(value: string): StoreSpec {
  if (!isStoreSpec(value)) {
    throw new StoreError(
      "ARTIFACT_STORE_BAD_SPEC",
      `could not use store ${JSON.stringify(value)}: expected "buildkite" or "dir:PATH"`,
    );
  }
  if (value === "buildkite") return { kind: "buildkite" };
  return { kind: "dir", root: value.slice(4) };
}

/** Where a job token may come from, first match wins. */
export interface TokenSources {
  /** `BUILDKITE_AGENT_ACCESS_TOKEN` or an explicit option. */
  token?: string;
  /** A file holding the token (the agent-injector writes `<lifecycle>/env/token`). */
  tokenFile?: string;
  /** The lifecycle dir whose `env/token` is read when nothing else is given. */
  lifecycleDir: string;
}

/**
 * Finds the job token: the value, else the token file, else `<lifecycleDir>/env/token`. Returns
 * undefined when there is none; throws when a named token file cannot be read. The token is
 * trimmed and never part of an error message.
 */
export async function resolveToken(src: TokenSources): Promise<string | undefined> {
  if (src.token?.trim()) return src.token.trim();
  if (src.tokenFile) {
    try {
      return (await readFile(src.tokenFile, "utf8")).trim() || undefined;
    } catch (cause) {
      throw new StoreError(
        "ARTIFACT_STORE_NO_TOKEN",
        `could not read the token file ${src.tokenFile}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
  const fallback = path.join(src.lifecycleDir, "env", "token");
  try {
    return (await readFile(fallback, "utf8")).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Builds the store a spec names; a buildkite store without a token is a StoreError. */
export function openStore(
  spec: StoreSpec,
  buildkite: Omit<BuildkiteStoreOptions, "token" | "endpoint"> & {
    token?: string;
    endpoint?: string;
  },
): ArtifactStore {
  if (spec.kind === "dir") return new DirStore({ root: spec.root });
  if (!buildkite.token) {
    throw new StoreError(
      "ARTIFACT_STORE_NO_TOKEN",
      "could not use the buildkite store: no job token; set BUILDKITE_AGENT_ACCESS_TOKEN, give a token file, or let the agent-injector write <lifecycle dir>/env/token",
    );
  }
  return new BuildkiteStore({
    ...buildkite,
    token: buildkite.token,
    endpoint: buildkite.endpoint || DEFAULT_ENDPOINT,
  });
}
