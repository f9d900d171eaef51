import { resolve } from "node:path";
import { describeSource, type Source } from "@buildpod/config";
import { BuildpodError, defineCommand, ExitCode, type Logger } from "@buildpod/runtime";
import { Counter, Gauge, type Registry } from "prom-client";
import { cacheLayout } from "./cache.ts";
import { checkoutOptions } from "./config.ts";
import { prepareCredentials } from "./credentials.ts";
import { GitError } from "./git.ts";
import { CheckoutError, type CheckoutEvent, checkoutRepository } from "./materialize.ts";
import { checkCommit, checkRef, refFromBuildkiteEnv } from "./refs.ts";
import { parseRepoUrl, UsageError } from "./url.ts";

export const checkout = defineCommand({
  description:
    "materialize the job's commit in the workspace from the mirror cache, fetching from origin only what the cache lacks",
  kind: "init",
  options: checkoutOptions,
  async run(ctx) {
    const c = ctx.config;
    const fromEnv = c.ref === undefined ? refFromBuildkiteEnv(ctx.env) : undefined;
    const { url, commit, ref } = await validate({
      repo: [c.repo, labelOf(ctx.sources.repo, "--repo")],
      commit: [c.commit, labelOf(ctx.sources.commit, "--commit")],
      ref:
        c.ref !== undefined
          ? [c.ref, labelOf(ctx.sources.ref, "--ref")]
          : fromEnv !== undefined
            ? [
                fromEnv,
                "the ref from the Buildkite env (BUILDKITE_REFSPEC, _PULL_REQUEST, _TAG, _BRANCH)",
              ]
            : undefined,
    });
    const dest = resolve(c.dest);
    const metrics = checkoutMetrics(ctx.metrics);
    const credentials = await prepareCredentials(c, url);
    ctx.logger.info({ url: url.fetchUrl, commit, ref, mode: c.mode, path: dest }, "checking out");
    try {
      const result = await checkoutRepository({
        url,
        target: { commit, ref },
        layout: cacheLayout(resolve(c.cache), c.marksDir),
        dest,
        mode: c.mode,
        submodules: c.submodules,
        wipe: c.wipe,
        strictOrigin: c.strictOrigin,
        checkoutWorkers: c.checkoutWorkers,
        credentials,
        recordFile: c.record ?? `${dest}.checkout.json`,
        signal: ctx.signal,
        onEvent: reporter(ctx.logger, c.progressInterval),
      });
      metrics.checkouts.inc({ source: result.source, mode: result.mode });
      metrics.originBytes.inc(result.originBytes);
      if (result.brokenMarkWritten) metrics.brokenMarks.inc();
      for (const [phase, ms] of Object.entries(result.phases))
        metrics.phase.set({ phase }, ms / 1000);
      return {
        exitCode: ExitCode.OK,
        summary: {
          cache: result.source,
          cache_reason: result.cacheReason,
          mode: result.mode,
          url: result.url,
          commit: result.commit,
          ref: result.ref,
          origin_contacted: result.originContacted,
          origin_bytes: result.originBytes,
          origin_objects: result.originObjects,
          submodules: result.submodules,
          warnings: result.warnings.length,
          phases_ms: result.phases,
          path: dest,
        },
      };
    } catch (e) {
      metrics.checkouts.inc({ source: "failed", mode: c.mode });
      throw asBuildpodError(e, url.fetchUrl);
    } finally {
      await credentials.dispose();
    }
  },
});

type Given = [value: string, label: string];

/**
 * Checks every user-given name before git runs and reports all problems at once (exit 2),
 * each under the name the user gave it by: `--commit`, `BUILDKITE_COMMIT`, a config file line.
 */
async function validate(given: { repo: Given; commit: Given; ref: Given | undefined }) {
  const problems: string[] = [];
  const attempt = async <T>(check: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await check();
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      problems.push(e.message);
      return undefined;
    }
  };
  const url = await attempt(() => parseRepoUrl(...given.repo));
  const commit = await attempt(() => checkCommit(...given.commit));
  const ref = given.ref && (await attempt(() => checkRef(...(given.ref as Given))));
  if (url === undefined || commit === undefined || problems.length > 0) {
    throw new BuildpodError("REPO_MIRROR_BAD_INPUT", problems.join("; and "), {
      exitCode: ExitCode.CONFIG,
    });
  }
  return { url, commit, ref };
}

/** How an option's value is named in an error: the flag, env var or file it came from. */
function labelOf(source: Source | undefined, flag: string): string {
  if (source?.kind === "env") return source.name;
  if (source?.kind === "file") return `${flag} (${describeSource(source)})`;
  return flag;
}

const CODES: Record<CheckoutError["code"], [string, number]> = {
  "unknown-commit": ["REPO_MIRROR_UNKNOWN_COMMIT", ExitCode.FAILED],
  "origin-unreachable": ["REPO_MIRROR_ORIGIN_UNREACHABLE", ExitCode.FAILED],
  "origin-auth": ["REPO_MIRROR_ORIGIN_AUTH", ExitCode.FAILED],
  "dest-not-empty": ["REPO_MIRROR_DEST_NOT_EMPTY", ExitCode.CONFIG],
};

function asBuildpodError(e: unknown, url: string): unknown {
  if (e instanceof CheckoutError) {
    const [code, exitCode] = CODES[e.code];
    return new BuildpodError(code, e.message, { exitCode, cause: e });
  }
  if (e instanceof UsageError) {
    return new BuildpodError("REPO_MIRROR_BAD_INPUT", e.message, { exitCode: ExitCode.CONFIG });
  }
  if (e instanceof GitError) {
    return new BuildpodError("REPO_MIRROR_GIT_FAILED", `could not check out ${url}: ${e.message}`, {
      cause: e,
      hint: "the git output above says why; rerun with BUILDPOD_LOG_LEVEL=debug for every step",
    });
  }
  return e;
}

/** Logs checkout events: warnings at once, phases as they end, progress at most per interval. */
export function reporter(logger: Logger, intervalMs: number): (e: CheckoutEvent) => void {
  const last = new Map<string, number>();
  return (e) => {
    if (e.type === "warning") {
      logger.warn({ code: e.code, err: e.err }, e.message);
    } else if (e.type === "phase") {
      logger.info({ phase: e.phase, duration_ms: e.durationMs }, "phase done");
    } else {
      const key = `${e.phase}/${e.progress.stage}`;
      const now = Date.now();
      const done = e.progress.percent === 100 && e.progress.processed === e.progress.total;
      if (!done && now - (last.get(key) ?? 0) < intervalMs) return;
      if (done && last.get(key) === -1) return;
      last.set(key, done ? -1 : now);
      const { stage, percent, processed, total, bytes, bytesPerSecond } = e.progress;
      logger.info(
        {
          phase: e.phase,
          stage,
          percent,
          objects: processed,
          total,
          bytes,
          bytes_per_second: bytesPerSecond,
        },
        "progress",
      );
    }
  };
}

function checkoutMetrics(registry: Registry) {
  return {
    checkouts: new Counter({
      name: "repo_mirror_checkouts_total",
      help: "checkouts by where the objects came from (hit, miss, fallback, in-place, failed)",
      labelNames: ["source", "mode"],
      registers: [registry],
    }),
    originBytes: new Counter({
      name: "repo_mirror_origin_bytes_total",
      help: "bytes of packs received from origin",
      registers: [registry],
    }),
    brokenMarks: new Counter({
      name: "repo_mirror_broken_marks_total",
      help: "mirrors this checkout found corrupt and marked for sync to rebuild",
      registers: [registry],
    }),
    phase: new Gauge({
      name: "repo_mirror_checkout_phase_seconds",
      help: "time spent per checkout phase (prepare, clone, fetch, checkout, submodules)",
      labelNames: ["phase"],
      registers: [registry],
    }),
  };
}
