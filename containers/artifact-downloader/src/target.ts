import path from "node:path";

/** Where an artifact lands under the destination, or why it may not land anywhere. */
export type Target = { ok: true; relative: string; absolute: string } | { ok: false; why: string };

/**
 * Maps an artifact path to a file under `dest`. Unlike the agent, which strips leading `..`
 * and `/` (reference §2), a path that is absolute, climbs with `..`, holds a NUL, or names no
 * file is refused outright: such a path is a mistake or an attack, and silently renaming it
 * would hide both. Backslashes count as separators, as the agent treats them on Linux.
 */
export function targetPath(dest: string, artifactPath: string): Target {
  const slashed = artifactPath.replaceAll("\\", "/");
  if (slashed.includes("\0")) return { ok: false, why: "it contains a NUL byte" };
  if (slashed.startsWith("/") || /^[A-Za-z]:\//.test(slashed)) {
    return { ok: false, why: "it is absolute" };
  }
  const parts = slashed.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return { ok: false, why: "it climbs out with '..'" };
  if (parts.length === 0) return { ok: false, why: "it names no file" };

  const root = path.resolve(dest);
  const absolute = path.resolve(root, ...parts);
  if (!absolute.startsWith(root + path.sep)) {
    return { ok: false, why: "it would land outside the destination" };
  }
  return { ok: true, relative: parts.join("/"), absolute };
}
