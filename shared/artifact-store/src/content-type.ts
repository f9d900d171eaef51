/** What the agent sends when the extension says nothing (reference §1). */
export const DEFAULT_CONTENT_TYPE = "binary/octet-stream";

type Mime = typeof import("mime").default;

// Loaded at the first lookup, not with the store: mime builds its tables of about two thousand
// types as it is evaluated, about 1 MiB of RSS that an uploader with nothing to upload yet holds.
let mime: Promise<Mime> | undefined;

/** Content type by extension, `override` first when set. */
export async function contentTypeFor(path: string, override?: string): Promise<string> {
  if (override) return override;
  mime ??= import("mime").then((m) => m.default);
  return (await mime).getType(path) ?? DEFAULT_CONTENT_TYPE;
}
