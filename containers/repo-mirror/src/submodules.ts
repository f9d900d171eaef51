/** Submodules of a fresh or updated workspace, each from its own mirror when the cache has one. */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { lookupMirror } from "./cache.ts";
import type { Run } from "./checkout-run.ts";
import { git } from "./git.ts";
import { parseRepoUrl } from "./url.ts";

/**
 * Submodules, each from its own mirror when the cache has one (`--reference`, plus
 * `--dissociate` in that mode), from its origin otherwise. URLs from `.gitmodules` are checked
 * like `--repo`: the repository's content decides them, so they are untrusted input.
 */
export async function updateSubmodules(run: Run): Promise<void> {
  const o = run.o;
  const hasModules = await stat(join(o.dest, ".gitmodules")).then(
    () => true,
    () => false,
  );
  if (!hasModules) return;
  const opts = run.gitOpts("submodules", o.dest);
  await git(["submodule", "sync", "--recursive"], opts);
  await git(["submodule", "init"], opts);

  const urls = await git(["config", "--get-regexp", "^submodule\\..*\\.url$"], opts).catch(() => ({
    stdout: "",
  }));
  for (const line of urls.stdout.split("\n").filter(Boolean)) {
    const [key = "", url = ""] = line.split(/ (.*)/s);
    const name = key.replace(/^submodule\./, "").replace(/\.url$/, "");
    const subUrl = parseRepoUrl(url, `submodule ${name} url`);
    const path = (
      await git(["config", "-f", ".gitmodules", "--get", `submodule.${name}.path`], opts)
    ).stdout.trim();
    const args = ["submodule", "update", "--init", "--recursive", "--force", "--progress"];
    const lookup = o.layout ? await lookupMirror(o.layout, subUrl.key) : undefined;
    if (lookup?.state === "found") {
      args.push("--reference", lookup.link);
      if (o.mode === "dissociate") args.push("--dissociate");
    }
    run.result.originContacted = true;
    const r = await git([...args, "--", path], opts);
    run.result.originObjects += r.receivedObjects;
    run.result.submodules++;
  }
}
