import { gzip as gzipCallback, type ZlibOptions } from "node:zlib";

/**
 * gzip as a promise, for compressed scrapes and Datadog API posts. Not `promisify(gzip)` at
 * module level: reading `gzip` loads node:zlib, which the bundle loads only at first use, and
 * most runs compress nothing.
 */
export function gzip(data: Buffer | string, options: ZlibOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gzipCallback(data, options, (err, out) => (err ? reject(err) : resolve(out)));
  });
}
