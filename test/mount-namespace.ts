// Real file systems that refuse (read-only, full), not mocks: a command run in a private mount
// namespace (`unshare --mount`) after a shell line has mounted what it needs there. The mounts
// vanish with the namespace. Root mounts directly; any other user first maps itself to root
// in a new user namespace.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Runs `mount` (a `/bin/sh` line, its arguments as `$1`, `$2`, ...) and then `command` in a
 * private mount namespace; resolves with the command's stdout, rejects when either fails.
 */
export async function inMountNamespace(
  mount: string,
  mountArgs: string[],
  command: string[],
): Promise<string> {
  const userns = process.getuid?.() === 0 ? [] : ["--user", "--map-root-user"];
  const script = `${mount} && shift ${mountArgs.length} && exec "$@"`;
  const { stdout } = await run("unshare", [
    ...userns,
    "--mount",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    script,
    "sh",
    ...mountArgs,
    ...command,
  ]);
  return stdout;
}
