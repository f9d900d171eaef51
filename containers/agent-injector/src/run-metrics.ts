import { Counter, Gauge, type Registry } from "prom-client";

/** The sidecar's own metrics, served on /metrics beside the process metrics. */
export interface RunMetrics {
  polls: Counter<"result">;
  cancelled: Gauge;
  agentExitCode: Gauge;
  signalsForwarded: Counter<"signal">;
}

export function runMetrics(registry: Registry): RunMetrics {
  const registers = [registry];
  return {
    polls: new Counter({
      name: "agent_injector_job_state_polls_total",
      help: "Polls of the job's state through the agent API, by result (ok or error)",
      labelNames: ["result"],
      registers,
    }),
    cancelled: new Gauge({
      name: "agent_injector_job_cancelled",
      help: "1 once the job was seen canceling or canceled",
      registers,
    }),
    agentExitCode: new Gauge({
      name: "agent_injector_agent_exit_code",
      help: "Exit code of the supervised agent, once it exited",
      registers,
    }),
    signalsForwarded: new Counter({
      name: "agent_injector_signals_forwarded_total",
      help: "Signals forwarded to the supervised agent, by signal",
      labelNames: ["signal"],
      registers,
    }),
  };
}
