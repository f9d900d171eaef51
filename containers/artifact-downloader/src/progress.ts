import type { Logger } from "@buildpod/runtime";

/**
 * Logs a progress line (files, bytes, rate) every `intervalMs` while a download runs, so a long
 * init container shows it is alive. The timer is unref'd: it never keeps the process up.
 */
export function startProgress(logger: Logger, intervalMs: number) {
  const started = Date.now();
  let files = 0;
  let expected = 0;
  let bytes = 0;
  const timer =
    intervalMs > 0
      ? setInterval(() => {
          const seconds = (Date.now() - started) / 1000;
          const rate = bytes / 1024 ** 2 / Math.max(seconds, 0.001);
          logger.info(
            { files, expected, bytes, mib_per_second: Number(rate.toFixed(1)) },
            "download progress",
          );
        }, intervalMs).unref()
      : undefined;
  return {
    addFile: () => {
      files++;
    },
    addExpected: (n: number) => {
      expected += n;
    },
    addBytes: (n: number) => {
      bytes += n;
    },
    stop: () => clearInterval(timer),
  };
}
