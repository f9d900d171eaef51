import mime from "mime";

/** What the agent sends when the extension says nothing (reference §1). */
export const DEFAULT_CONTENT_TYPE = "binary/octet-stream";

/** Content type by extension, `override` first when set. */
export function contentTypeFor(path: string, override?: string): string {
  if (override) return override;
  return mime.getType(path) ?? DEFAULT_CONTENT_TYPE;
}
