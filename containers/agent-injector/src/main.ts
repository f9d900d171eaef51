import { main } from "@buildpod/runtime";
import { inject } from "./inject.ts";
import { run } from "./run.ts";

main({
  name: "agent-injector",
  description: "put buildkite-agent and the job's credentials into the pod, and run the agent",
  envPrefix: "AGENT_INJECTOR",
  commands: { inject, run },
});
