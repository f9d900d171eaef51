import { Writable } from "node:stream";
import pino from "pino";

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** The container or library part the lines come from; every line carries it. */
  component: string;
  level?: string;
  /** Values to scrub from every line, whatever field or message they end up in. */
  secrets?: readonly string[];
  /** Where lines go; stdout by default. Lines are written synchronously, so none is lost at exit. */
  destination?: NodeJS.WritableStream;
}

const REDACTED = "[redacted]";

/**
 * A pino logger writing one JSON object per line with buildpod's fixed field names
 * (`component`, `err`, `path`, `attempt`, `duration_ms`, counts). Secrets are scrubbed from the
 * serialised line itself, so a token that slipped into an error message is still not printed.
 */
export function createLogger(options: LoggerOptions): Logger {
  const secrets = new Set<string>();
  let scrub: ((line: string) => string) | undefined;
  const target = (options.destination ??
    pino.destination({ dest: 1, sync: true })) as NodeJS.WritableStream;
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      const line = chunk.toString();
      target.write(scrub ? scrub(line) : line);
      callback();
    },
  });
  const logger = pino(
    {
      level: options.level ?? "info",
      base: { component: options.component },
      messageKey: "msg",
      errorKey: "err",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
    },
    stream,
  );
  scrubbers.set(logger, (values) => {
    // Very short values would scrub ordinary words; a secret is never that short.
    for (const value of values) if (value.length >= 4) secrets.add(value);
    scrub = secretScrubber([...secrets]);
  });
  addSecrets(logger, options.secrets ?? []);
  return logger;
}

/**
 * pino's error serializer, except for DOMExceptions (the AbortError of every cancelled request):
 * their two dozen legacy code constants are enumerable and would fill the line.
 */
function serializeError(err: unknown) {
  if (err instanceof DOMException)
    return { type: "DOMException", name: err.name, message: err.message };
  return pino.stdSerializers.err(err as Error);
}

const scrubbers = new WeakMap<Logger, (values: readonly string[]) => void>();

/**
 * Adds secrets a program learned after its logger was made (a token read from a file written
 * by another container): from now on they are scrubbed from every line, the summary included.
 */
export function addSecrets(logger: Logger, values: readonly string[]): void {
  scrubbers.get(logger)?.(values);
}

/** A function replacing every secret (and its JSON-escaped form) in a line, or undefined. */
export function secretScrubber(secrets: readonly string[]): ((line: string) => string) | undefined {
  if (secrets.length === 0) return undefined;
  const forms = new Set<string>();
  for (const secret of secrets) {
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
  }
  const escaped = [...forms].sort((a, b) => b.length - a.length).map(escapeRegExp);
  const pattern = new RegExp(escaped.join("|"), "g");
  return (line) => line.replace(pattern, REDACTED);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
