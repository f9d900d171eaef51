/**
 * @buildpod/agent-injector's modules, for tests and for programs that embed them. The container
 * itself is src/main.ts.
 */
export { AgentApi, AgentApiError, apiUrl, escapePathSegment } from "./agent-api.ts";
export { CANCEL_STATES, waitForCancel } from "./cancel-watch.ts";
export { InjectorError } from "./errors.ts";
export { inject } from "./inject.ts";
export { installBinary, readImageChecksum, readImageVersion } from "./install-binary.ts";
export { readJobEnv, writeJobEnv } from "./job-env.ts";
export { run } from "./run.ts";
export { SecretScrubber } from "./scrub.ts";
export { isShellName, renderShellEnv, selectJobEnv, shellQuote } from "./shell-env.ts";
export { supervise } from "./supervise.ts";
export { verifyToken } from "./verify.ts";
