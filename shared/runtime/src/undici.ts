/**
 * undici, evaluated on first use. Evaluating it adds about 17 MiB to a process's RSS (its
 * source alone is 5 MiB), which a container that never makes a request in this run (a
 * metrics-exporter without push files, an uploader writing to a directory store) should not
 * pay at every start. Modules that make requests import the types statically and the code
 * through this function.
 */
let loading: Promise<typeof import("undici")> | undefined;

export function loadUndici(): Promise<typeof import("undici")> {
  loading ??= import("undici");
  return loading;
}
