/**
 * @buildpod/runtime: what every container program stands on: the CLI runner (`main`), the
 * logger, exit codes, status files, the health and metrics server, and the sidecar lifecycle.
 */
export {
  main,
  type ProgramIo,
  renderHelp,
  renderMarkdownOptions,
  runProgram,
  version,
} from "./cli.ts";
export {
  type Command,
  type CommandKind,
  type CommonConfig,
  defineCommand,
  type Outcome,
  type Program,
  type RunContext,
} from "./command.ts";
export { commonOptions } from "./common-options.ts";
export { BuildpodError } from "./errors.ts";
export { ExitCode, type ExitCodeName, exitCodeName, worstExitCode } from "./exit-codes.ts";
export { type HealthServer, startHealthServer } from "./http.ts";
export {
  type ContainerTermination,
  createLifecycle,
  type Finished,
  type Lifecycle,
  lifecycleOptions,
  readMarker,
  writeMarker,
} from "./lifecycle/index.ts";
export {
  addSecrets,
  createLogger,
  type Logger,
  type LoggerOptions,
  secretScrubber,
} from "./logger.ts";
export { type StatusRecord, writeFileAtomic, writeStatus } from "./status.ts";
export { loadUndici } from "./undici.ts";
