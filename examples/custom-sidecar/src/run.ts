import { readFile } from "node:fs/promises";
import { defineCommand, ExitCode, loadUndici } from "@buildpod/runtime";
import { walkAll } from "@buildpod/volume-watch";
import { options } from "./config.ts";
import { parseJUnit } from "./junit.ts";
import { summarise, type TestSummary } from "./summary.ts";

const RETRY_DELAY_MS = 1_000;

/**
 * Waits for the workload to finish, reads every JUnit report under the root, and posts one
 * summary, retrying until the drain deadline. Exit 0 when posted, 3 when the endpoint could not
 * be reached in time, 4 when posted but some report was unreadable.
 */
export const report = defineCommand({
  description: "post a summary of the workload's JUnit reports when it finishes",
  kind: "sidecar",
  options,
  async run({ config, logger, lifecycle }) {
    const finished = await lifecycle.finished;
    logger.info({ reason: finished.reason, exit_code: finished.exitCode }, "workload finished");
    const deadline = lifecycle.drainSignal();

    const files = await walkAll({
      root: config.root,
      include: config.include,
      signal: deadline,
      onWarning: (w) => logger.warn({ path: w.path }, w.message),
    });
    const reports: { path: string; cases: ReturnType<typeof parseJUnit> }[] = [];
    const unreadable: TestSummary["unreadable"] = [];
    for (const file of files) {
      try {
        reports.push({
          path: file.path,
          cases: parseJUnit(await readFile(file.absolutePath, "utf8")),
        });
      } catch (err) {
        unreadable.push({ path: file.path, error: (err as Error).message });
        logger.warn(
          { path: file.path, err },
          "could not read a JUnit report; left out of the summary",
        );
      }
    }
    const summary = summarise(reports, unreadable, config.slowest);
    const body = JSON.stringify({ workload_exit_code: finished.exitCode ?? null, ...summary });

    for (let attempt = 1; !deadline.aborted; attempt++) {
      try {
        const { request } = await loadUndici();
        const res = await request(config.endpoint, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(config.token ? { authorization: `Bearer ${config.token}` } : {}),
          },
          body,
          headersTimeout: config.requestTimeout,
          bodyTimeout: config.requestTimeout,
          signal: deadline,
        });
        await res.body.dump();
        if (res.statusCode < 300) {
          logger.info(
            { tests: summary.tests, failed: summary.failed, attempt },
            "posted the test summary",
          );
          const exitCode = unreadable.length > 0 ? ExitCode.REJECTED : ExitCode.OK;
          return {
            exitCode,
            summary: {
              posted: true,
              files: summary.files,
              tests: summary.tests,
              failed: summary.failed,
            },
          };
        }
        logger.warn(
          { status: res.statusCode, attempt },
          "the endpoint refused the summary; retrying",
        );
      } catch (err) {
        if (deadline.aborted) break;
        logger.warn({ err, attempt }, "could not post the test summary; retrying");
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS).unref());
    }
    logger.error({ tests: summary.tests }, "drain deadline reached before the summary was posted");
    return {
      exitCode: ExitCode.INCOMPLETE,
      summary: { posted: false, files: summary.files, tests: summary.tests },
    };
  },
});
