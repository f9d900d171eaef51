/**
 * SIGTERM is how Kubernetes stops a container: a native sidecar gets it after the workload
 * has exited, any container gets it when the pod is deleted. SIGINT is the same from a
 * terminal. The first one starts the drain; a second one means "stop now".
 */
const SIGNALS = ["SIGTERM", "SIGINT"] as const;

export type StopSignal = (typeof SIGNALS)[number];

export interface SignalWatchOptions {
  onFirst(signal: StopSignal): void;
  onSecond(signal: StopSignal): void;
}

/**
 * Installs the handlers. Installing them replaces Node's default of dying on the signal, so
 * the second signal must be acted on by `onSecond`.
 */
export function watchSignals(opts: SignalWatchOptions): { close(): void } {
  let received = 0;
  const handler = (signal: StopSignal) => {
    received += 1;
    if (received === 1) opts.onFirst(signal);
    else opts.onSecond(signal);
  };
  for (const signal of SIGNALS) process.on(signal, handler);

  return {
    close() {
      for (const signal of SIGNALS) process.off(signal, handler);
    },
  };
}
