import { duration, option, z } from "@buildpod/config";

/** The test-results sidecar's options; env vars carry the `TEST_RESULTS_` prefix. */
export const options = {
  root: option({
    schema: z.string().default("/artifacts"),
    description: "directory the workload writes its JUnit XML reports into",
    metavar: "DIR",
  }),
  include: option({
    schema: z.array(z.string()).default(["**/*.xml"]),
    description: "globs, relative to the root, of the report files",
    repeatable: true,
    metavar: "GLOB",
  }),
  endpoint: option({
    schema: z.url({ protocol: /^https?$/ }),
    description: "URL the summary is POSTed to as JSON",
    metavar: "URL",
  }),
  token: option({
    schema: z.string().optional(),
    description: "bearer token for the endpoint",
    secret: true,
  }),
  slowest: option({
    schema: z.number().int().min(0).max(100).default(5),
    description: "how many of the slowest test cases the summary lists",
  }),
  requestTimeout: option({
    schema: duration.prefault("10s"),
    description: "timeout of one POST attempt",
    metavar: "DURATION",
  }),
};
