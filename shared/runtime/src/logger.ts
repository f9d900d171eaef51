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
  scrubbers.set(logger, {
    add(values) {
      // Very short values would scrub ordinary words; a secret is never that short.
      for (const value of values) if (value.length >= 4) secrets.add(value);
      scrub = secretScrubber([...secrets]);
    },
    scrub: (text) => (scrub ? scrub(text) : text),
  });
  addSecrets(logger, options.secrets ?? []);
  return logger;
}

/**
 * pino's error serializer, with two changes. DOMExceptions (the AbortError of every cancelled
 * request) lose their two dozen enumerable legacy code constants, which would fill the line.
 * And the message gets a cause's message appended only when it does not already say it: our
 * errors are written "could not X: <why>", so pino's plain appending would repeat the why.
 */
function serializeError(err: unknown) {
  if (err instanceof DOMException)
    return { type: "DOMException", name: err.name, message: err.message };
  const out = pino.stdSerializers.err(err as Error);
  if (err instanceof Error) out.message = messageWithNewCauses(err);
  return out;
}

function messageWithNewCauses(err: Error): string {
  let text = err.message;
  let cause = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 8; depth++) {
    if (cause.message && !text.includes(cause.message)) text += `: ${cause.message}`;
    cause = cause.cause;
  }
  return text;
}

interface Scrubber {
  add(values: readonly string[]): void;
  scrub(text: string): string;
}

const scrubbers = new WeakMap<Logger, Scrubber>();

/**
 * Adds secrets a program learned after its logger was made (a token read from a file written
 * by another container): from now on they are scrubbed from every line, the summary included.
 */
export function addSecrets(logger: Logger, values: readonly string[]): void {
  scrubbers.get(logger)?.add(values);
}

/**
 * `text` with the secrets `logger` knows replaced, as its lines have them: for what a program
 * writes besides its log (the status file).
 */
export function scrubSecrets(logger: Logger, text: string): string {
  return scrubbers.get(logger)?.scrub(text) ?? text;
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
