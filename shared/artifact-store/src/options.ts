import { option, z } from "@buildpod/config";
import { isStoreSpec } from "./select.ts";

/**
 * The options naming the store and how to reach it, shared by both artifact containers and
 * read by `storeFromConfig`. `direction` finishes the store's description: "go" or "come from".
 */
export function storeOptions(direction: "go" | "come from") {
  return {
    store: option({
      // Checked with the other options, so that a bad value names its flag, env var or line.
      schema: z.string().min(1).refine(isStoreSpec, '"buildkite" or "dir:PATH"').optional(),
      description: `where artifacts ${direction}: "buildkite" or "dir:PATH"; default buildkite when a token or endpoint is set, else dir:<lifecycle dir>/artifact-store`,
      metavar: "STORE",
    }),
    endpoint: option({
      schema: z.url({ protocol: /^https?$/ }).optional(),
      description: "Buildkite agent API base URL; default https://agent-edge.buildkite.com/v3",
      aliases: ["BUILDKITE_AGENT_ENDPOINT"],
      metavar: "URL",
    }),
    token: option({
      schema: z.string().min(1).optional(),
      description:
        "the job's agent access token; default $BUILDKITE_AGENT_ACCESS_TOKEN, else <lifecycle dir>/env/token",
      secret: true,
      aliases: ["BUILDKITE_AGENT_ACCESS_TOKEN"],
    }),
  };
}
