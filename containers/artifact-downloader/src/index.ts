/** @buildpod/artifact-downloader: the program and its core, for tests and embedding. */
export {
  type DownloadEvent,
  type DownloadOptions,
  type DownloadReport,
  downloadArtifacts,
} from "./download.ts";
export { IN_MEMORY_LIMIT } from "./fetch-one.ts";
export { program } from "./program.ts";
export { type Target, targetPath } from "./target.ts";
