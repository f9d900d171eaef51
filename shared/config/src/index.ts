/**
 * @buildpod/config: option schemas, their sources (flags > env > config file > defaults) and
 * validation that reports every problem at once. Secrets are read from files, never printed.
 */
export {
  type DocumentOrigin,
  loadDocument,
  loadDocumentFile,
  type ParsedFile,
  parseFile,
} from "./document.ts";
export { type OptionRow, optionRows, optionsMarkdown, renderOptions } from "./help.ts";
export { type Loaded, type LoadInput, loadConfig, printable } from "./load.ts";
export {
  type ConfigOf,
  envName,
  flagName,
  kebabCase,
  type OptionSpec,
  type Options,
  option,
  screamingSnake,
} from "./option.ts";
export {
  ConfigError,
  describeSource,
  didYouMean,
  formatProblem,
  type Problem,
  type Source,
} from "./problems.ts";
export { byteSize, duration, listenAddress, parseByteSize, parseDuration } from "./values.ts";
export * as z from "./zod.ts";
