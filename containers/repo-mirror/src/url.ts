import { createHash } from "node:crypto";
import { isAbsolute, resolve } from "node:path";

/** Transports we accept; anything else (remote helpers such as `ext::`, `fd::`) is refused. */
export type Transport = "https" | "http" | "ssh" | "git" | "file";

/** A repository URL that passed validation, split into what git needs and what the cache needs. */
export interface RepoUrl {
  /** The URL exactly as given (may carry credentials: never log it). */
  readonly input: string;
  readonly transport: Transport;
  /** The URL git fetches from, with any user:password removed (kept in `credentials`). */
  readonly fetchUrl: string;
  /** Lowercased host (with a non-default port), empty for `file`. */
  readonly host: string;
  /** Repository path without trailing slashes and without a `.git` suffix. */
  readonly path: string;
  /** Credentials embedded in an https URL; passed to git by env, never by config. */
  readonly credentials?: { username: string; password: string };
  /** The normalised identity: every spelling of one repository has the same one. */
  readonly identity: string;
  /** The collision-free cache key: a readable prefix plus a hash of the identity. */
  readonly key: string;
}

/** A refused input. `input` names the option, so errors read "--repo ...". */
export class UsageError extends Error {
  readonly input: string;
  constructor(input: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.input = input;
  }
}

const DEFAULT_PORTS: Record<string, string> = { https: "443", http: "80", ssh: "22", git: "9418" };
const SCHEMES: Record<string, Transport> = {
  https: "https",
  http: "http",
  ssh: "ssh",
  "git+ssh": "ssh",
  "ssh+git": "ssh",
  git: "git",
  file: "file",
};

// `user@host:path` (git's scp-like syntax): no scheme, and a colon before the first slash.
const SCP_LIKE = /^(?:([^@/]+)@)?([^:/]+):(.*)$/;

/**
 * Validates a repository URL and derives its cache identity. Throws a UsageError for anything git
 * could read as an option or as a remote-helper transport, before git ever sees it.
 */
export function parseRepoUrl(input: string, option = "--repo"): RepoUrl {
  refuseUnsafe(input, option);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(input)?.[1]?.toLowerCase();
  if (scheme !== undefined) return fromUrl(input, scheme, option);
  if (isAbsolute(input)) return finish(input, "file", "", input, `file://${input}`);

  const scp = SCP_LIKE.exec(input);
  if (scp && !input.startsWith("/")) {
    const [, user, host = "", path = ""] = scp;
    refuseHost(host, input, option);
    const fetchUrl = `${user ? `${user}@` : ""}${host}:${path}`;
    return finish(input, "ssh", host.toLowerCase(), path, fetchUrl);
  }
  throw new UsageError(
    option,
    `${option} ${JSON.stringify(redactUrl(input))} is not a repository URL; ` +
      "expected https://host/org/repo, ssh://host/org/repo, git@host:org/repo.git, " +
      "git://host/org/repo or file:///path",
  );
}

function refuseUnsafe(input: string, option: string): void {
  if (input === "") throw new UsageError(option, `${option} is empty; give the repository URL`);
  if (input.startsWith("-")) {
    throw new UsageError(
      option,
      `${option} ${JSON.stringify(input)} starts with "-" and would be read as a git option; ` +
        "give a repository URL",
    );
  }
  // `ext::sh -c ...`, `fd::3` and other `<helper>::<address>` forms run arbitrary transports.
  if (/^[A-Za-z0-9+.-]+::/.test(input)) {
    throw new UsageError(
      option,
      `${option} uses a remote-helper transport ("${input.split("::")[0]}::"), which is refused; ` +
        "use an https, ssh, git or file URL",
    );
  }
  if (
    /\s/.test(input) ||
    [...input].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  ) {
    throw new UsageError(
      option,
      `${option} contains whitespace or control characters; remove them`,
    );
  }
}

function refuseHost(host: string, input: string, option: string): void {
  if (host === "" || host.startsWith("-")) {
    throw new UsageError(
      option,
      `${option} ${JSON.stringify(redactUrl(input))} has no usable host ` +
        `("${host}"); a host may not be empty or start with "-"`,
    );
  }
}

function fromUrl(input: string, scheme: string, option: string): RepoUrl {
  const transport = SCHEMES[scheme];
  if (!transport) {
    throw new UsageError(
      option,
      `${option} uses the unsupported scheme "${scheme}://"; use https, http, ssh, git or file`,
    );
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch (cause) {
    throw new UsageError(option, `${option} is not a valid URL: ${(cause as Error).message}`);
  }
  const path = decodeURIComponent(url.pathname);
  if (transport === "file") return finish(input, "file", "", path, `file://${url.pathname}`);

  refuseHost(url.hostname, input, option);
  const port = url.port && url.port !== DEFAULT_PORTS[scheme] ? `:${url.port}` : "";
  const host = `${url.hostname.toLowerCase()}${port}`;
  let credentials: RepoUrl["credentials"];
  let user = "";
  if (url.password !== "" && (transport === "https" || transport === "http")) {
    credentials = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  } else if (url.username !== "") {
    user = `${url.username}@`;
  }
  const fetchUrl = `${transport === "ssh" ? "ssh" : scheme}://${user}${url.host}${url.pathname}${url.search}`;
  return finish(input, transport, host, path, fetchUrl, credentials);
}

function finish(
  input: string,
  transport: Transport,
  host: string,
  rawPath: string,
  fetchUrl: string,
  credentials?: RepoUrl["credentials"],
): RepoUrl {
  const path = normalisePath(transport === "file" ? resolve(rawPath) : rawPath);
  // The scheme is left out on purpose: https://h/o/r and git@h:o/r.git are one repository.
  const identity = transport === "file" ? `file:${path}` : `${host}/${path}`;
  return { input, transport, fetchUrl, host, path, credentials, identity, key: cacheKey(identity) };
}

function normalisePath(path: string): string {
  let p = path.replace(/\/{2,}/g, "/").replace(/\/+$/, "");
  if (p.endsWith(".git")) p = p.slice(0, -4);
  return p.replace(/\/+$/, "").replace(/^\/+/, "");
}

/**
 * `<readable>-<hash>`: the readable part helps people find a mirror on disk, the 20 hex digits
 * (80 bits of SHA-256 over the full identity) keep distinct repositories apart, which a lossy
 * character substitution alone cannot.
 */
export function cacheKey(identity: string): string {
  const readable = identity
    .replace(/^file:/, "file-")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(-60)
    .replace(/^[-.]+/, "")
    .toLowerCase();
  const hash = createHash("sha256").update(identity).digest("hex").slice(0, 20);
  return `${readable || "repo"}-${hash}`;
}

/** The URL with any password replaced, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/, "$1:***@");
}
