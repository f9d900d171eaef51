import { option, z } from "@buildpod/config";

/** The options `render` and `run` share: which description, and which sidecar mode. */
export const descriptionOptions = {
  file: option({
    schema: z.string().min(1),
    description: "the BuildEnvironment description (YAML)",
    metavar: "FILE",
  }),
  sidecarMode: option({
    schema: z.enum(["native", "classic"]).optional(),
    description: "override the description's sidecar mode",
    metavar: "MODE",
  }),
};
