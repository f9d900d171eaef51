import { type Options, option, z } from "@buildpod/config";

/** Options every command of every container accepts; the env vars share the BUILDPOD_ prefix. */
export function commonOptions(envPrefix: string) {
  return {
    config: option({
      schema: z.string().optional(),
      description: "YAML or JSON file of option keys, typically a mounted ConfigMap",
      env: `${envPrefix}_CONFIG`,
      metavar: "FILE",
      flagOnly: false,
    }),
    printConfig: option({
      schema: z.boolean().default(false),
      description: "print the effective configuration (secrets redacted) and exit",
      flagOnly: true,
    }),
    logLevel: option({
      schema: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
      description: "lowest level of log lines written",
      env: "BUILDPOD_LOG_LEVEL",
      metavar: "LEVEL",
    }),
    lifecycleDir: option({
      schema: z.string().default("/buildpod"),
      description: "the shared lifecycle volume: markers, status files, the job env",
      env: "BUILDPOD_LIFECYCLE_DIR",
      metavar: "DIR",
    }),
    containerName: option({
      schema: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "a container name (DNS label)")
        .optional(),
      description: "name of this container in the pod, for the status file; default the program's",
      env: "BUILDPOD_CONTAINER_NAME",
      metavar: "NAME",
    }),
    httpPort: option({
      schema: z.number().int().min(0).max(65535).default(0),
      description: "port of the /healthz, /readyz and /metrics server; 0 serves none",
      env: "BUILDPOD_HTTP_PORT",
      metavar: "PORT",
    }),
    httpHost: option({
      schema: z.string().default("0.0.0.0"),
      description: "address the health and metrics server listens on",
      env: "BUILDPOD_HTTP_HOST",
      metavar: "HOST",
    }),
  } satisfies Options;
}
