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
  const secrets = [...new Set(options.secrets ?? [])].filter((s) => s.length >= 4);
  const scrub = secretScrubber(secrets);
  const target = options.destination ?? pino.destination({ dest: 1, sync: true });
  const stream = scrub ? scrubbingStream(target as NodeJS.WritableStream, scrub) : target;
  return pino(
    {
      level: options.level ?? "info",
      base: { component: options.component },
      messageKey: "msg",
      errorKey: "err",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    stream as pino.DestinationStream,
  );
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

function scrubbingStream(target: NodeJS.WritableStream, scrub: (line: string) => string): Writable {
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      target.write(scrub(chunk.toString()));
      callback();
    },
  });
}
