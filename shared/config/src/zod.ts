/**
 * The parts of zod that buildpod's option and document schemas use, exported as `z` by this
 * package. Naming them one by one lets the bundler leave out the rest of zod: its locales,
 * JSON Schema conversion and schema compiler, which `export { z } from "zod"` would evaluate in
 * every program as it starts (2.5 MiB of an idle sidecar's RSS, bench/startup.bench.ts). A
 * schema that needs another zod function adds its name here.
 */

export type { core, infer, input, output, ZodType } from "zod";
export {
  array,
  boolean,
  coerce,
  discriminatedUnion,
  enum,
  literal,
  NEVER,
  number,
  record,
  strictObject,
  string,
  union,
  url,
} from "zod";
