import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { option, z } from "@buildpod/config";
import { BuildpodError, defineCommand, ExitCode } from "@buildpod/runtime";
import { loadDescription } from "../description.ts";
import { descriptionOptions } from "../options.ts";
import { renderObjects, repoCacheObjects, toYaml } from "../render.ts";

export const render = defineCommand({
  description: "print the Kubernetes Pod and companion objects of a BuildEnvironment",
  kind: "tool",
  options: {
    ...descriptionOptions,
    withCache: option({
      schema: z.boolean().default(false),
      description:
        "also print the repo cache's PersistentVolumeClaim and the CronJob that syncs it",
    }),
    output: option({
      schema: z.string().default("-"),
      description: 'file to write the YAML to; "-" is stdout',
      metavar: "FILE",
    }),
  },
  async run({ config, logger }) {
    const description = loadDescription(config.file);
    if (config.sidecarMode) description.spec.sidecarMode = config.sidecarMode;
    const objects = [
      ...(config.withCache ? repoCacheObjects(description) : []),
      ...renderObjects(description),
    ];
    const yaml = toYaml(objects);
    if (config.output === "-") {
      process.stdout.write(yaml);
    } else {
      try {
        mkdirSync(path.dirname(config.output), { recursive: true });
        writeFileSync(config.output, yaml);
      } catch (err) {
        throw new BuildpodError(
          "BUILDPOD_RENDER_WRITE",
          `could not write ${config.output}: ${(err as Error).message}`,
          {
            hint: "choose a writable --output path",
            cause: err,
          },
        );
      }
      logger.info({ path: config.output, objects: objects.length }, "wrote the rendered objects");
    }
    return {
      exitCode: ExitCode.OK,
      summary: { objects: objects.length, kinds: objects.map((o) => o.kind) },
    };
  },
});
