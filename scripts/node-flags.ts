/**
 * The flags every image gives `node` before its bundle (images/Dockerfile: the ENTRYPOINT,
 * and the build-time run that fills the compile cache, since V8 only accepts cached code
 * compiled under the same flags). The benchmarks and `buildpod run` start bundles with them
 * too, so their figures and behaviour are the images'.
 *
 * `--no-maglev`: during start-up V8's mid-tier optimising compiler, Maglev, compiles about
 * twenty functions that start-up calls a few hundred times each (path handling, the bundle's
 * module wrappers, schema constructors), and its compiler code and working memory stay
 * resident: 2.3 to 2.6 MiB of every sidecar's idle RSS (bench/startup.bench.ts, docs/images.md).
 * Without it, hot code goes from the baseline compiler to TurboFan as before; the log-exporter
 * ships at the same MiB per CPU-second (docs/log-exporter.md).
 *
 * `--v8-pool-size=1`: one V8 background thread instead of four, for concurrent compiling and
 * garbage collection. None of these programs keeps more than one core busy with JavaScript,
 * and each thread costs its stack and allocator memory: about 2 MiB of the log-exporter's peak
 * RSS while shipping at full speed, at the same MiB per CPU-second (issue 5's benchmark).
 *
 * They are command-line flags. NODE_OPTIONS refuses `--no-maglev`, and setting it from inside the
 * program (`v8.setFlagsFromString`) changes the flag hash that Node's built-in code cache and
 * the compile cache are checked against, so both are thrown away: 4 MiB more, not less.
 */
export const NODE_FLAGS: readonly string[] = ["--no-maglev", "--v8-pool-size=1"];
