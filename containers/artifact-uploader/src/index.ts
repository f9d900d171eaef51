/** @buildpod/artifact-uploader: the program and its core, for tests and embedding. */
export { DEFAULT_EXCLUDES, noMultipartHint } from "./config.ts";
export { type Prepared, prepare, sameState } from "./prepare.ts";
export { program } from "./program.ts";
export { SWEEP_GROUP, sweep } from "./sweep.ts";
export {
  Uploader,
  type UploaderEvent,
  type UploaderOptions,
  type UploaderReport,
} from "./uploader.ts";
