import * as z from "./zod.ts";

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/**
 * Parses "1m30s", "500ms", "25s" or "0". Text needs a unit: a bare "25" could mean seconds as
 * easily as milliseconds, and a drain of 25 ms instead of 25 s fails quietly.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^0+(\.0+)?$/.test(trimmed)) return 0;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== trimmed) return undefined;
  return parts.reduce((sum, p) => sum + Number(p[1]) * (DURATION_UNITS[p[2] as string] ?? 0), 0);
}

/** Parses "5MiB", "100KB", "1048576". */
export function parseByteSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const factor = match ? SIZE_UNITS[(match[2] as string).toLowerCase()] : undefined;
  return match && factor !== undefined ? Math.round(Number(match[1]) * factor) : undefined;
}

function parsedWith(
  parse: (text: string) => number | undefined,
  expected: string,
  bareNumbers: "accepted" | "zero only",
) {
  return z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
    if (typeof value === "number") {
      if (bareNumbers === "accepted" || value === 0) return value;
      ctx.addIssue({
        code: "custom",
        message: `${expected} (a bare number has no unit)`,
        input: value,
      });
      return z.NEVER;
    }
    const parsed = parse(value);
    if (parsed === undefined) {
      ctx.addIssue({ code: "custom", message: expected, input: value });
      return z.NEVER;
    }
    return parsed;
  });
}

/**
 * A duration in milliseconds, written with a unit: "25s", "500ms", "2m", "1h30m" (or "0").
 * A bare number is refused wherever it comes from, a YAML file included: `drainTimeout: 25`
 * could mean seconds as easily as milliseconds, and a 25 ms drain loses data quietly.
 * Defaults in code (`duration.default(25_000)`) are milliseconds and are not parsed.
 */
export const duration = parsedWith(
  parseDuration,
  'a duration with a unit, such as "25s", "500ms" or "2m"',
  "zero only",
);

/** A size in bytes, written as "5MiB", "100KB", "1GiB" or a number of bytes. */
export const byteSize = parsedWith(
  parseByteSize,
  'a size such as "5MiB", "512KiB" or "1GB"',
  "accepted",
);

/** Listen address `HOST:PORT` or `:PORT`. */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-f:.]+\]|[^:\s]*):\d{1,5}$/i, 'HOST:PORT or ":PORT", such as ":9100"');
