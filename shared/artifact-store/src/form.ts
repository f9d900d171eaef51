import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";

/**
 * Boundaries are this process's random prefix plus a counter: unpredictable to whoever wrote
 * the files, unique per body, and without a call into the random generator per file. The
 * prefix is drawn for the first body, not as the module loads: the random generator loads
 * OpenSSL, 2 MiB of RSS that a sidecar with nothing to upload yet would hold while it idles.
 */
let boundaryPrefix: string | undefined;
let bodies = 0;

/**
 * A multipart/form-data body (RFC 7578) whose length is known up front, as storage services
 * want an exact Content-Length: the text fields first, the file part last (S3 ignores fields
 * after the file). The file's bytes are streamed, never held in memory, unless `content` is
 * already a buffer (a small file kept from hashing): then the body is one buffer, which undici
 * writes in one go without any stream.
 */
export function formBody(
  fields: readonly [string, string][],
  file: { field: string; filename: string; contentType: string; size: number },
  content: Buffer | (() => Readable),
): { contentType: string; length: number; body: () => Readable | Buffer } {
  boundaryPrefix ??= `----buildpod${randomBytes(12).toString("hex")}`;
  const boundary = `${boundaryPrefix}${(bodies++).toString(36)}`;
  let head = "";
  for (const [name, value] of fields) {
    head += `--${boundary}\r\ncontent-disposition: form-data; name="${quoteName(name)}"\r\n\r\n`;
    head += `${value}\r\n`;
  }
  head += `--${boundary}\r\ncontent-disposition: form-data; name="${quoteName(file.field)}"; `;
  head += `filename="${quoteName(file.filename)}"\r\ncontent-type: ${file.contentType}\r\n\r\n`;
  const before = Buffer.from(head, "utf8");
  const after = Buffer.from(`\r\n--${boundary}--\r\n`, "utf8");

  const contentType = `multipart/form-data; boundary=${boundary}`;
  const length = before.length + file.size + after.length;
  if (Buffer.isBuffer(content)) {
    const whole = Buffer.concat([before, content, after]);
    return { contentType, length, body: () => whole };
  }
  return {
    contentType,
    length,
    body: () =>
      Readable.from(
        (async function* () {
          yield before;
          yield* (content as () => Readable)();
          yield after;
        })(),
        { objectMode: false },
      ),
  };
}

/** The HTML form encoding of names in a disposition header: quote, CR and LF percent-encoded. */
function quoteName(name: string): string {
  return name.replaceAll('"', "%22").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}
