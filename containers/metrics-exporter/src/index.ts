/**
 * @buildpod/metrics-exporter: the parts of the sidecar, exported for tests, the benchmark and
 * other programs that need a strict exposition-format parser.
 */
export { type DatadogPoint, datadogName, datadogTag, toDatadog } from "./datadog.ts";
export { DatadogApiSink, DogStatsdSink, seriesUrl } from "./datadog-sinks.ts";
export {
  OPENMETRICS_CONTENT_TYPE,
  renderOpenMetrics,
  renderText,
  TEXT_CONTENT_TYPE,
  wantsOpenMetrics,
} from "./exposition.ts";
export { DatadogForwarder } from "./forwarder.ts";
export { type Conflict, mergeFiles } from "./merge.ts";
export {
  type Family,
  formatProblem,
  labelsOf,
  type ParseProblem,
  type ParseResult,
  parseExposition,
  type Sample,
} from "./parse.ts";
export { groupPath, PushClient, Pusher, type PushTarget } from "./pushgateway.ts";
export { ScrapeExposition, serveScrapes } from "./scrape.ts";
export { type TextFile, TextfileDir } from "./textfiles.ts";
