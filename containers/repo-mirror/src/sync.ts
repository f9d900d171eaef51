import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { BuildpodError, defineCommand, ExitCode, type Logger } from "@buildpod/runtime";
import { Counter, Gauge, type Registry } from "prom-client";
import { cacheLayout } from "./cache.ts";
import { syncOptions } from "./config.ts";
import { type RepoSyncResult, type SyncEvent, syncMirrors } from "./mirror-sync.ts";
import { parseRepoUrl, type RepoUrl, UsageError } from "./url.ts";

export const sync = defineCommand({
  description:
    "create, update, repair and gc the mirrors in the cache (run by the CronJob or DaemonSet that owns it)",
  kind: "tool",
  options: syncOptions,
  positionals: "URL...",
  async run(ctx) {
    const c = ctx.config;
    const urls = await collectUrls(ctx.positionals, c.urlsFile);
    const metrics = syncMetrics(ctx.metrics);
    ctx.logger.info({ repositories: urls.length, path: resolve(c.cache) }, "syncing mirrors");
    const results = await syncMirrors({
      layout: cacheLayout(resolve(c.cache), c.marksDir),
      urls,
      credentialFiles: c,
      lockTimeoutMs: c.lockTimeout,
      lockStaleMs: c.lockStaleAfter,
      gc: c.gc,
      gcIntervalMs: c.gcInterval,
      gcPruneExpire: c.gcPruneExpire,
      retiredGraceMs: c.retiredGrace,
      parallel: c.parallel,
      signal: ctx.signal,
      onEvent: syncReporter(ctx.logger, metrics),
    });
    const failed = results.filter((r) => r.action === "failed");
    const count = (a: RepoSyncResult["action"]) => results.filter((r) => r.action === a).length;
    return {
      exitCode: failed.length > 0 ? ExitCode.FAILED : ExitCode.OK,
      summary: {
        repositories: results.length,
        created: count("created"),
        updated: count("updated"),
        rebuilt: count("rebuilt"),
        failed: failed.length,
        gc: results.filter((r) => r.gc).length,
        bytes: results.reduce((sum, r) => sum + r.receivedBytes, 0),
        mirrors: results.map((r) => ({
          url: r.url,
          key: r.key,
          action: r.action,
          gc: r.gc,
          bytes: r.receivedBytes,
          duration_ms: r.durationMs,
          ...(r.error ? { err: r.error } : {}),
        })),
      },
    };
  },
});

/** URLs from the arguments and the list file, validated all at once, duplicates dropped. */
async function collectUrls(
  positionals: string[],
  urlsFile: string | undefined,
): Promise<RepoUrl[]> {
  const inputs = positionals.map((u) => ({ text: u, where: "argument" }));
  if (urlsFile) {
    const text = await readFile(urlsFile, "utf8").catch((e: Error) => {
      throw new BuildpodError(
        "REPO_MIRROR_BAD_INPUT",
        `could not read --urls-file ${urlsFile}: ${e.message}`,
        {
          exitCode: ExitCode.CONFIG,
        },
      );
    });
    text.split("\n").forEach((line, i) => {
      const t = line.replace(/#.*/, "").trim();
      if (t) inputs.push({ text: t, where: `${urlsFile}:${i + 1}` });
    });
  }
  if (inputs.length === 0) {
    throw new BuildpodError("REPO_MIRROR_BAD_INPUT", "no repositories to sync", {
      exitCode: ExitCode.CONFIG,
      hint: "give URLs as arguments (repo-mirror sync --cache DIR URL...) or --urls-file",
    });
  }
  const problems: string[] = [];
  const byKey = new Map<string, RepoUrl>();
  for (const { text, where } of inputs) {
    try {
      const url = parseRepoUrl(text, where);
      if (!byKey.has(url.key)) byKey.set(url.key, url);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length > 0) {
    throw new BuildpodError(
      "REPO_MIRROR_BAD_INPUT",
      `refused ${problems.length} URL(s): ${problems.join("; ")}`,
      {
        exitCode: ExitCode.CONFIG,
      },
    );
  }
  return [...byKey.values()];
}

function syncReporter(logger: Logger, m: ReturnType<typeof syncMetrics>): (e: SyncEvent) => void {
  return (e) => {
    if (e.type === "warning") logger.warn({ url: e.url, err: e.err }, e.message);
    if (e.type !== "repo") return;
    const r = e.result;
    const fields = {
      url: r.url,
      key: r.key,
      action: r.action,
      gc: r.gc,
      bytes: r.receivedBytes,
      duration_ms: r.durationMs,
    };
    if (r.action === "failed") logger.error({ ...fields, err: r.error }, "mirror sync failed");
    else logger.info(fields, "mirror synced");
    m.syncs.inc({ action: r.action });
    m.duration.set({ repo: r.key }, r.durationMs / 1000);
    if (r.action !== "failed") m.lastSuccess.set({ repo: r.key }, Date.now() / 1000);
  };
}

function syncMetrics(registry: Registry) {
  return {
    syncs: new Counter({
      name: "repo_mirror_syncs_total",
      help: "mirror syncs by action (created, updated, rebuilt, failed)",
      labelNames: ["action"],
      registers: [registry],
    }),
    duration: new Gauge({
      name: "repo_mirror_sync_seconds",
      help: "duration of the last sync of each mirror",
      labelNames: ["repo"],
      registers: [registry],
    }),
    lastSuccess: new Gauge({
      name: "repo_mirror_last_success_timestamp_seconds",
      help: "when each mirror was last synced successfully (unix time)",
      labelNames: ["repo"],
      registers: [registry],
    }),
  };
}
