/**
 * Bundles every container (and the custom-sidecar example) into one self-contained ES module,
 * `<dir>/dist/<name>.mjs`, that runs with `node` alone: no node_modules next to it. That file is
 * what the images in `images/` run, and what the end-to-end tests start.
 *
 *   pnpm run build                 build every bundle that has a `src/main.ts`
 *   pnpm run build log-exporter    build only the named bundles
 *   pnpm run build --verbose       also print esbuild's warnings in full
 *   pnpm run build --sourcemap     also write dist/<name>.mjs.map, for `node --enable-source-maps`
 *   pnpm run build --analyze       also list the packages taking the most bytes in each bundle
 *
 * The version the bundles print for `--version` is the root package.json version plus the git
 * revision (`0.1.0+1a2b3c4`), compiled in as `process.env.BUILDPOD_VERSION`; a release build can
 * set BUILDPOD_VERSION (and BUILDPOD_REVISION) in the environment to override either part.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createRequire, isBuiltin } from "node:module";
import path from "node:path";
import { brotliCompressSync, constants as zlibConstants } from "node:zlib";
import * as esbuild from "esbuild";

const require = createRequire(import.meta.url);

const ROOT = path.resolve(import.meta.dirname, "..");

/** Directories whose children are bundled when they have a `src/main.ts`. */
const BUNDLE_PARENTS = ["containers", "examples"] as const;

/** One bundle to build: a program directory with a `src/main.ts`. */
export interface BundleSpec {
  /** The program's name: its directory name, also the bundle's and the image's name. */
  name: string;
  /** Absolute path of the program's directory. */
  dir: string;
  /** Absolute path of `src/main.ts`. */
  entry: string;
  /** Absolute path of `dist/<name>.mjs`. */
  outfile: string;
}

/** What happened to one bundle. */
export interface BundleResult {
  spec: BundleSpec;
  ok: boolean;
  bytes: number;
  warnings: esbuild.Message[];
  errors: esbuild.Message[];
  /** Native addons (`.node` files) the bundled code imports but the bundle leaves out. */
  nativeAddons: string[];
  /** Bytes in the bundle per package (`(own code)` for the repository's), largest first. */
  byPackage: [string, number][];
}

/**
 * Lists the programs under `containers/` and `examples/`. A directory without `src/main.ts`
 * (an example that is only a description, a container nobody has started) is not a program.
 */
export function findBundles(root = ROOT): BundleSpec[] {
  const specs: BundleSpec[] = [];
  for (const parent of BUNDLE_PARENTS) {
    const parentDir = path.join(root, parent);
    if (!existsSync(parentDir)) continue;
    for (const entry of readdirSync(parentDir, { withFileTypes: true })) {
      const dir = path.join(parentDir, entry.name);
      const main = path.join(dir, "src", "main.ts");
      if (!entry.isDirectory() || !existsSync(main)) continue;
      specs.push({
        name: entry.name,
        dir,
        entry: main,
        outfile: path.join(dir, "dist", `${entry.name}.mjs`),
      });
    }
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}

/** The short git revision of HEAD, or undefined outside a git checkout or without git. */
export function gitRevision(root = ROOT): string | undefined {
  if (process.env.BUILDPOD_REVISION) return process.env.BUILDPOD_REVISION;
  try {
    const out = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The version compiled into every bundle: `<package.json version>+<git revision>`. */
export function bundleVersion(root = ROOT): string {
  if (process.env.BUILDPOD_VERSION) return process.env.BUILDPOD_VERSION;
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
    version: string;
  };
  const revision = gitRevision(root);
  return revision ? `${pkg.version}+${revision}` : pkg.version;
}

// An ES module has no `require`, `__dirname` or `__filename`, but the CommonJS packages inside
// the bundle (pino, prom-client, ...) use them. `require` comes from createRequire (esbuild's own
// shim calls it for `require("node:...")`); the other two are rewritten by `define` below to
// Node's `import.meta` equivalents, so no banner name can collide with a bundled module's own.
const BANNER = [
  "#!/usr/bin/env node",
  'import { createRequire as __buildpodCreateRequire } from "node:module";',
  "const require = __buildpodCreateRequire(import.meta.url);",
  // The bundled libraries (undici, chokidar, ...) need Node 22 or newer and fail on older ones
  // with errors that do not say so; this line runs before any of them.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source for the banner
  'if (Number(process.versions.node.split(".")[0]) < 22) { process.stderr.write(`this program needs Node.js 22 or newer (24 LTS is what it is built for); this is Node.js ${process.version}\\n`); process.exit(2); }',
  // V8 doubles its young generation whenever a scavenge finds it busy (up to 16 MiB per
  // semi-space) and keeps it. Start-up alone grows it to 2 MiB per semi-space; kept at its
  // initial size, an idle sidecar holds 2 MiB less (bench/startup.bench.ts), and the hot
  // paths, which allocate little per line or per file, show no measurable CPU cost (issue 5's
  // benchmark: 24 scavenges of about 1 ms over 128 MiB of logs). V8 reads the flag each
  // time it would grow the young generation, so setting it here, first, takes effect.
  'require("node:v8").setFlagsFromString("--semi-space-growth-factor=1");',
].join("\n");

/**
 * A single-file bundle cannot carry a compiled addon, so `.node` files are left out. The modules
 * that load one optionally (hot-shots' unix-dgram, say) catch the failure at run time; anything
 * that needs one for real fails when it loads, and the build names it so nobody is surprised.
 */
const excludeNativeAddons: esbuild.Plugin = {
  name: "exclude-native-addons",
  setup(build) {
    build.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
  },
};

/**
 * Node's built-in modules are loaded with `require`, never with an ES `import`. Importing a
 * built-in as an ES module makes Node read every one of its exports to build the module
 * namespace, and some exports are lazy getters: `node:http`'s `WebSocket`, `CloseEvent` and
 * `MessageEvent` load Node's own copy of undici. Measured with Node 24: `import "node:http"`
 * costs 14.5 MiB of RSS, `require("node:http")` 1.6 MiB. So each built-in an ES module of the
 * bundle imports resolves to a one-line CommonJS module that requires it; esbuild turns that
 * `require` into a call to the banner's `require`.
 */
const requireBuiltins: esbuild.Plugin = {
  name: "require-builtins",
  setup(build) {
    const namespace = "buildpod-builtin";
    build.onResolve({ filter: /^[a-z0-9_/:]+$/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined;
      if (args.namespace === namespace) return { path: args.path, external: true };
      const lazy = LAZY_BUILTINS.has(args.path.replace(/^node:/, ""));
      if (args.kind !== "import-statement" && !lazy) return { path: args.path, external: true };
      return { path: args.path, namespace };
    });
    build.onLoad({ filter: /.*/, namespace }, (args) => ({
      contents: LAZY_BUILTINS.has(args.path.replace(/^node:/, ""))
        ? lazyBuiltinSource(args.path)
        : `module.exports = require(${JSON.stringify(args.path)});`,
      loader: "js",
    }));
  },
};

/**
 * Built-ins that a bundled library loads at its top level but that most runs never use, each
 * costly to load: `tls` and `https` initialise OpenSSL (8 MiB of RSS with `crypto`, measured
 * with Node 24), prom-client loads `https` and `zlib` for its Pushgateway client, hot-shots
 * `dgram`, pino `worker_threads`, sonic-boom `assert`. Each resolves to an object with one
 * getter per export name (read from this Node at build time) that loads the real module on first
 * use, so a program that never sends over TLS never pays for OpenSSL; `assert`, a function,
 * resolves to a function that loads it when called. `events` and `stream` are not listed: their
 * exports are classes that bundled code extends, which no stand-in can be.
 */
const LAZY_BUILTINS = new Set([
  "assert",
  "child_process",
  "cluster",
  "crypto",
  "dgram",
  "dns",
  "http2",
  "https",
  "readline",
  "tls",
  "worker_threads",
  "zlib",
]);

function lazyBuiltinSource(specifier: string): string {
  const real = require(specifier) as Record<string, unknown>;
  const data = EAGER_DATA[specifier.replace(/^node:/, "")] ?? [];
  const names = Object.keys(real).filter((name) => !data.includes(name));
  const copies = Object.fromEntries(data.map((name) => [name, real[name]]));
  return lazyModuleSource(specifier, names, copies, typeof real === "function");
}

/**
 * Exports that are plain data, copied into the bundle at build time so that reading them
 * loads nothing. undici reads `http2.constants` (header names and protocol numbers of RFC
 * 9113) as it is evaluated, and would load `node:http2` (9 MiB of RSS) with it although it
 * only speaks HTTP/2 when asked to. pino reads `worker_threads.isMainThread` as it is
 * evaluated: true at build time, and true wherever a bundle runs, since a bundle is a program
 * that `node` starts, never code loaded into a worker thread.
 */
const EAGER_DATA: Record<string, string[]> = {
  http2: ["constants"],
  worker_threads: ["isMainThread"],
};

/**
 * A CommonJS module with one getter per export name that requires `specifier` on first use,
 * and the `copies` as plain values. `load` is JavaScript source of a function that returns the
 * real module (one that throws leaves the package out of the bundle).
 * Getters, not a Proxy: esbuild's ES-module interop copies an imported module's property
 * descriptors, which reads no getter, so importing the names loads nothing yet.
 */
function lazyModuleSource(
  specifier: string,
  names: string[],
  copies: Record<string, unknown> = {},
  callable = false,
  load = `() => (real ??= require(${JSON.stringify(specifier)}))`,
): string {
  // A module that exports a function gets a function that calls or constructs the real one.
  // It cannot stand in as a base class (`class X extends ...`), so such modules are left out.
  const base = callable
    ? "Object.assign(function (...args) { return new.target ? Reflect.construct(load(), args, new.target) : load().apply(this, args); }, " +
      `${JSON.stringify(copies)})`
    : JSON.stringify(copies);
  return [
    `const names = ${JSON.stringify(names)};`,
    "let real;",
    `const load = ${load};`,
    `const lazy = ${base};`,
    "for (const name of names) {",
    "  Object.defineProperty(lazy, name, {",
    "    enumerable: true,",
    "    configurable: true,",
    "    get: () => load()[name],",
    "    set: (value) => { load()[name] = value; },",
    "  });",
    "}",
    "module.exports = lazy;",
  ].join("\n");
}

/**
 * Packages that a bundled module imports at its top level but uses only inside functions that
 * buildpod never calls, or that only some runs call. Each such import, from the importing files
 * matched here, gets an object that requires the real package at the first property read, so
 * the package is neither evaluated nor does it load what it needs in turn until then.
 *
 * - `@elastic/transport` requires undici for its UndiciConnection, whose constructor is the
 *   only place that touches it; the elasticsearch sink sends through HttpConnection. Loading
 *   undici there costs 1.6 MiB of source to compile and `node:http2` (9 MiB of RSS measured
 *   with Node 24: its module sources and native code), paid by every log-exporter that ships
 *   to Elasticsearch, which is the case issue 5's memory goal is measured in. It is its own
 *   copy (undici 7; ours is 8), so it is left out of the bundle altogether (`absent`): its 0.7
 *   MiB of source would stay in memory for nothing. Reading it throws, saying why.
 * - It also requires hpagent, which is only used for a proxy and which subclasses
 *   `https.Agent` as it loads, so it loads `node:https` and OpenSSL with it.
 * - `@buildpod/config` parses YAML only when a run reads a config file or a document (a sinks
 *   or push file); most runs read neither, and evaluating yaml costs an idle sidecar 1.5 MiB.
 * - The metrics-exporter's DogStatsD sink creates a hot-shots client only with `--datadog
 *   dogstatsd`; hot-shots loads `node:net` and `node:dgram` as it is evaluated.
 * - pino's `transport()` (logging through a worker thread) is never used: the runtime's logger
 *   writes to a stream. Its module loads thread-stream and `node:worker_threads`.
 */
const ELASTIC_CONNECTIONS = /[\\/]@elastic[\\/]transport[\\/](lib|esm)[\\/]connection[\\/]/;
const CONFIG_DOCUMENT = /[\\/]shared[\\/]config[\\/]src[\\/]document\.ts$/;
const DATADOG_SINKS = /[\\/]metrics-exporter[\\/]src[\\/]datadog-sinks\.ts$/;
const PINO_MAIN = /[\\/]pino[\\/]pino\.js$/;
const PINO_TOOLS = /[\\/]pino[\\/]lib[\\/]tools\.js$/;
const LAZY_REQUIRES: { pkg: string; importer: RegExp; absent?: string }[] = [
  {
    pkg: "undici",
    importer: ELASTIC_CONNECTIONS,
    absent: "the elasticsearch sink sends through HttpConnection (node:http)",
  },
  { pkg: "hpagent", importer: ELASTIC_CONNECTIONS },
  { pkg: "yaml", importer: CONFIG_DOCUMENT },
  { pkg: "hot-shots", importer: DATADOG_SINKS },
  { pkg: "./lib/transport", importer: PINO_MAIN },
  { pkg: "./transport", importer: PINO_TOOLS },
];

/** `text` as a regular expression that matches exactly it. */
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const lazyRequires: esbuild.Plugin = {
  name: "lazy-requires",
  setup(build) {
    const namespace = "buildpod-lazy-require";
    for (const { pkg, importer, absent } of LAZY_REQUIRES) {
      const filter = new RegExp(`^${escapeRegExp(pkg)}$`);
      build.onResolve({ filter }, (args) => {
        if (args.namespace === namespace || !importer.test(args.importer)) return undefined;
        const pluginData = { resolveDir: path.dirname(args.importer), absent };
        return { path: pkg, namespace, pluginData };
      });
    }
    build.onLoad({ filter: /.*/, namespace }, (args) => {
      const { resolveDir, absent } = args.pluginData as { resolveDir: string; absent?: string };
      // The export names, read from the very copy the importer would get.
      const real = createRequire(path.join(resolveDir, "x.js"))(args.path) as object;
      const callable = typeof real === "function";
      const load =
        absent &&
        `() => { throw new Error(${JSON.stringify(`${args.path} is not in this bundle: ${absent}`)}); }`;
      return {
        contents: lazyModuleSource(args.path, Object.keys(real), {}, callable, load || undefined),
        loader: "js",
        resolveDir,
      };
    });
  },
};

/**
 * CommonJS entry points that require every part of their package as they load, although a
 * program uses only some parts. Each `exports.name = require("./part")...;` statement of the
 * files matched here becomes a getter that requires the part when the name is first read.
 *
 * - prom-client's index loads its Pushgateway client (and with it `node:url` and `node:zlib`),
 *   its cluster aggregator, Summary's t-digest and the default process metrics. Containers use
 *   Registry, Counter, Gauge and Histogram; the runtime creates the default metrics at the first
 *   scrape (shared/runtime/src/cli.ts). Evaluated up front, the rest costs 2 MiB of RSS.
 */
const LAZY_EXPORTS: RegExp[] = [/[\\/]prom-client[\\/]index\.js$/];

/** `exports.name = require('./part').member;`, possibly over two lines. */
const REQUIRED_EXPORT = /^exports\.(\w+) =\s*(require\('[^']+'\)(?:\.\w+)*);$/gm;

const lazyExports: esbuild.Plugin = {
  name: "lazy-exports",
  setup(build) {
    for (const file of LAZY_EXPORTS) {
      build.onLoad({ filter: file }, async (args) => {
        const source = await readFile(args.path, "utf8");
        const contents = source.replace(
          REQUIRED_EXPORT,
          (_, name: string, value: string) =>
            `Object.defineProperty(exports, "${name}", { enumerable: true, get: () => ${value} });`,
        );
        // A new version of the package written differently must not quietly lose the saving.
        if (contents === source) throw new Error(`no exports to make lazy in ${args.path}`);
        return { contents, loader: "js" };
      });
    }
  },
};

/**
 * Modules that only some runs evaluate, and that are large: the log-exporter's sinks with their
 * client libraries (Elasticsearch, fluentd, Cloud Logging with gRPC and protobuf) and undici,
 * which a sidecar loads at its first request. Node keeps a bundle's whole source text in memory
 * for as long as the process runs, evaluated or not: for the log-exporter, whose runs use one
 * sink or none, that was 4.5 MiB of code it never ran.
 *
 * So each of these is bundled on its own as a CommonJS module, compressed with Brotli and
 * carried in the bundle as a string, which is unpacked, compiled and run at the point where the
 * module used to be evaluated (`await import(...)`, or the import of a module that is itself
 * loaded late). The bundle stays one file and the program reads nothing else; what stays in
 * memory until then is the compressed text, about a sixth of the size. The code of our own
 * that such a module imports (the runtime, the log records, ...) is not copied into it: it
 * gets the bundle's own instances, so both share one state.
 *
 * Entries are package names or files relative to the repository root.
 */
const EMBEDDED_MODULES = [
  "undici",
  "containers/log-exporter/src/sinks/elasticsearch.ts",
  "containers/log-exporter/src/sinks/fluentd.ts",
  "containers/log-exporter/src/sinks/stackdriver.ts",
];

const EMBEDDED = "buildpod-embedded";
/** How a module of ours is named where an embedded module requires it. */
const SHARED = "buildpod-shared:";
/** The function that unpacks and runs an embedded module, a module of the bundle. */
const UNPACK = "buildpod-unpack";

/** What the build of one embedded module produced, for the bundle's report and notices. */
interface EmbeddedModule {
  inputs: Record<string, { bytesInOutput: number }>;
  imports: esbuild.Metafile["outputs"][string]["imports"];
  legalComments?: Uint8Array;
  warnings: esbuild.Message[];
}

/** By the embedded module's path in esbuild's metafile (`buildpod-embedded:<entry>`). */
const embeddedModules = new Map<string, EmbeddedModule>();

const isDependency = (file: string) => file.split(/[\\/]/).includes("node_modules");

/**
 * What esbuild would resolve `args` to without the calling plugin: `marker` (the plugin's own)
 * tells that plugin's onResolve to pass the nested call by.
 */
function resolveAsUsual(build: esbuild.PluginBuild, args: esbuild.OnResolveArgs, marker: symbol) {
  return build.resolve(args.path, {
    kind: args.kind,
    importer: args.importer,
    resolveDir: args.resolveDir,
    pluginData: marker,
  });
}

/**
 * Leaves our own modules out of an embedded module's build: each import that resolves to a
 * file of this repository (not of a dependency) becomes `require("buildpod-shared:<file>")`,
 * which the unpacking hands the bundle's own instance of that module.
 */
const sharedOwnModules: esbuild.Plugin = {
  name: "shared-own-modules",
  setup(build) {
    const resolving = Symbol("resolving");
    build.onResolve({ filter: /^(\.|@buildpod\/)/ }, async (args) => {
      if (args.kind === "entry-point" || args.pluginData === resolving) return undefined;
      if (isDependency(args.importer)) return undefined;
      const found = await resolveAsUsual(build, args, resolving);
      if (found.errors.length > 0 || isDependency(found.path)) return undefined;
      return { path: `${SHARED}${path.relative(ROOT, found.path)}`, external: true };
    });
  },
};

/** Builds one embedded module as CommonJS, our own modules left out (sharedOwnModules). */
async function buildEmbedded(
  file: string,
  settings: BuildSettings,
): Promise<{ code: Uint8Array; shared: string[]; module: EmbeddedModule }> {
  const base = baseOptions(settings);
  const out = await esbuild.build({
    ...base,
    format: "cjs",
    banner: {},
    // `__dirname` and `__filename` are the unpacking function's parameters: the bundle's own.
    define: { "process.env.BUILDPOD_VERSION": JSON.stringify(settings.version) },
    sourcemap: false,
    plugins: [sharedOwnModules, ...(base.plugins ?? [])],
    entryPoints: [file],
    outfile: path.join(ROOT, "embedded.cjs"),
  });
  const output = Object.values(out.metafile?.outputs ?? {}).find((o) => o.entryPoint);
  const code = out.outputFiles?.find((f) => f.path.endsWith(".cjs"))?.contents;
  if (!output || !code) throw new Error(`esbuild produced no code for ${file}`);
  return {
    code,
    shared: output.imports.filter((i) => i.path.startsWith(SHARED)).map((i) => i.path),
    module: {
      inputs: output.inputs,
      imports: output.imports,
      legalComments: out.outputFiles?.find((f) => f.path.endsWith(".LEGAL.txt"))?.contents,
      warnings: out.warnings,
    },
  };
}

/** Unpacks, compiles and runs an embedded module; returns its exports. */
const UNPACK_SOURCE = `
const { compileFunction } = require("node:vm");
const { brotliDecompressSync } = require("node:zlib");
const outer = require;
module.exports = (label, packed, shared) => {
  const source = brotliDecompressSync(Buffer.from(packed, "base64")).toString("latin1");
  const run = compileFunction(source, ["exports", "require", "module", "__filename", "__dirname"], {
    filename: __filename + "#" + label,
  });
  const inner = Object.assign((id) => (Object.hasOwn(shared, id) ? shared[id]() : outer(id)), outer);
  const loaded = { exports: {} };
  run.call(loaded.exports, loaded.exports, inner, loaded, __filename, __dirname);
  return loaded.exports;
};
`;

/** Carries the modules of EMBEDDED_MODULES compressed, unpacked where they are first imported. */
function embedLazyModules(settings: BuildSettings): esbuild.Plugin {
  const packages = EMBEDDED_MODULES.filter((m) => !m.endsWith(".ts"));
  const files = EMBEDDED_MODULES.filter((m) => m.endsWith(".ts")).map((f) => path.join(ROOT, f));
  const names = [
    ...packages.map(escapeRegExp),
    ...files.map((f) => `.*/${escapeRegExp(path.basename(f, ".ts"))}(\\.ts)?`),
  ];
  return {
    name: "embed-lazy-modules",
    setup(build) {
      const resolving = Symbol("resolving");
      build.onResolve({ filter: new RegExp(`^(${names.join("|")})$`) }, async (args) => {
        if (args.pluginData === resolving || args.namespace !== "file") return undefined;
        const found = await resolveAsUsual(build, args, resolving);
        if (found.errors.length > 0) return undefined;
        if (!packages.includes(args.path) && !files.includes(found.path)) return undefined;
        const label = packages.includes(args.path) ? args.path : path.basename(found.path, ".ts");
        return {
          // One path per file, so that every importer gets the same instance.
          path: path.relative(ROOT, found.path),
          namespace: EMBEDDED,
          pluginData: { file: found.path, label },
        };
      });
      build.onLoad({ filter: /.*/, namespace: EMBEDDED }, async (args) => {
        const { file, label } = args.pluginData as { file: string; label: string };
        const { code, shared, module } = await buildEmbedded(file, settings);
        const packed = brotliCompressSync(code, {
          params: {
            [zlibConstants.BROTLI_PARAM_QUALITY]: 11,
            [zlibConstants.BROTLI_PARAM_SIZE_HINT]: code.byteLength,
          },
        }).toString("base64");
        embeddedModules.set(`${EMBEDDED}:${args.path}`, module);
        const table = shared.map(
          (id) =>
            `${JSON.stringify(id)}: () => require(${JSON.stringify(path.join(ROOT, id.slice(SHARED.length)))})`,
        );
        return {
          contents: `module.exports = require("${UNPACK}")(${JSON.stringify(label)}, "${packed}", { ${table.join(", ")} });`,
          loader: "js",
          resolveDir: ROOT,
        };
      });
      build.onResolve({ filter: new RegExp(`^${UNPACK}$`) }, (args) => ({
        path: args.path,
        namespace: UNPACK,
      }));
      build.onLoad({ filter: /.*/, namespace: UNPACK }, () => ({
        contents: UNPACK_SOURCE,
        loader: "js",
      }));
    },
  };
}

/** What every bundle of one build run shares. */
export interface BuildSettings {
  /** Compiled in as `process.env.BUILDPOD_VERSION`. */
  version: string;
  /** Write a linked source map beside each bundle. */
  sourcemap?: boolean;
}

/** The esbuild options every bundle shares. */
function baseOptions(settings: BuildSettings): esbuild.BuildOptions {
  return {
    absWorkingDir: ROOT,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    // Whitespace and syntax are minified, names are not. Node keeps the whole source text in
    // memory for as long as the process runs, and esbuild keeps comments otherwise: a comment
    // with one non-ASCII character makes V8 store the text as UTF-16. Minified and ASCII, the
    // log-exporter's source takes 11 MiB instead of 25 and the others 4 instead of 8
    // (bench/startup.bench.ts). Stack traces still name every function and class; for line
    // numbers, build with --sourcemap and run with `node --enable-source-maps`. Maps are
    // opt-in because writing them takes about as long as the bundles themselves.
    minifyWhitespace: true,
    minifySyntax: true,
    charset: "ascii",
    sourcemap: settings.sourcemap ? "linked" : false,
    legalComments: "external",
    banner: { js: BANNER },
    define: {
      "process.env.BUILDPOD_VERSION": JSON.stringify(settings.version),
      __dirname: "import.meta.dirname",
      __filename: "import.meta.filename",
    },
    plugins: [requireBuiltins, lazyRequires, lazyExports, excludeNativeAddons],
    metafile: true,
    // Files are written by writeAtomically below, never by esbuild in place.
    write: false,
    logLevel: "silent",
  };
}

/** The options of a bundle: the shared ones, and its large lazily used modules compressed. */
function bundleOptions(settings: BuildSettings): esbuild.BuildOptions {
  const base = baseOptions(settings);
  return { ...base, plugins: [embedLazyModules(settings), ...(base.plugins ?? [])] };
}

/**
 * Builds every bundle. All of them go through one esbuild run first, which parses the shared
 * libraries (runtime, config, undici, prom-client, ...) once instead of once per container: on
 * a busy two-core machine that is the difference between about 2 and 10 seconds. When that run
 * fails, each bundle is built alone so the report can say which one failed and why.
 */
export async function buildBundles(
  specs: BundleSpec[],
  settings: BuildSettings,
): Promise<BundleResult[]> {
  try {
    const out = await esbuild.build({
      ...bundleOptions(settings),
      entryPoints: Object.fromEntries(
        specs.map((s) => [path.relative(ROOT, s.outfile).replace(/\.mjs$/, ""), s.entry]),
      ),
      outdir: ROOT,
      outExtension: { ".js": ".mjs" },
    });
    return await Promise.all(specs.map((spec) => finishBundle(spec, out)));
  } catch {
    return Promise.all(specs.map((spec) => buildBundle(spec, settings)));
  }
}

/** Builds one bundle on its own; never throws, failures come back in the result. */
export async function buildBundle(
  spec: BundleSpec,
  settings: BuildSettings,
): Promise<BundleResult> {
  try {
    const out = await esbuild.build({
      ...bundleOptions(settings),
      entryPoints: [spec.entry],
      outfile: spec.outfile,
    });
    return await finishBundle(spec, out);
  } catch (err) {
    const failure = err as Partial<esbuild.BuildFailure>;
    // A bundle left over from an earlier run would let tests pass against stale code.
    await rm(spec.outfile, { force: true });
    return {
      spec,
      ok: false,
      bytes: 0,
      warnings: failure.warnings ?? [],
      errors: failure.errors ?? [
        { id: "", pluginName: "", text: String(err), location: null, notes: [], detail: err },
      ],
      nativeAddons: [],
      byPackage: [],
    };
  }
}

/** Writes one bundle, its source map and its notices, and collects what the report shows. */
async function finishBundle(spec: BundleSpec, out: esbuild.BuildResult): Promise<BundleResult> {
  // Metafile and message paths are relative to absWorkingDir, the repository root.
  const output = out.metafile?.outputs[path.relative(ROOT, spec.outfile)];
  const files = new Map(out.outputFiles?.map((f) => [f.path, f.contents]));
  const code = files.get(spec.outfile);
  if (!output || !code) throw new Error(`esbuild produced no ${spec.outfile}`);

  const own = Object.keys(output.inputs);
  // The modules it carries compressed (EMBEDDED_MODULES) count as part of it.
  const embedded = own.flatMap((key) => embeddedModules.get(key) ?? []);
  const inputs = [...own, ...embedded.flatMap((m) => Object.keys(m.inputs))];
  const comments = [files.get(`${spec.outfile}.LEGAL.txt`), ...embedded.map((m) => m.legalComments)]
    .filter((c) => c !== undefined)
    .map((c) => new TextDecoder().decode(c))
    .join("\n");
  const map = files.get(`${spec.outfile}.map`);
  await writeAtomically(spec.outfile, code, 0o755);
  if (map) await writeAtomically(`${spec.outfile}.map`, map);
  await writeAtomically(`${spec.outfile}.LEGAL.txt`, legalNotice(spec, inputs, comments));

  const mine = (m: esbuild.Message) => !m.location || own.includes(m.location.file);
  return {
    spec,
    ok: true,
    bytes: code.byteLength,
    warnings: [...out.warnings.filter(mine), ...embedded.flatMap((m) => m.warnings)],
    errors: [],
    nativeAddons: [...output.imports, ...embedded.flatMap((m) => m.imports)]
      .filter((i) => i.external && i.path.endsWith(".node"))
      .map((i) => i.path),
    byPackage: bytesByPackage(output.inputs),
  };
}

/** Sums the bundle's bytes per npm package, so the heavy dependencies stand out. */
function bytesByPackage(inputs: Record<string, { bytesInOutput: number }>): [string, number][] {
  const sums = new Map<string, number>();
  for (const [file, { bytesInOutput }] of Object.entries(inputs)) {
    let name = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1] ?? "(own code)";
    if (file.startsWith(`${EMBEDDED}:`)) {
      name = `${name === "(own code)" ? path.basename(file) : name} and its imports, compressed`;
    }
    sums.set(name, (sums.get(name) ?? 0) + bytesInOutput);
  }
  return [...sums].sort((a, b) => b[1] - a[1]);
}

/**
 * Other engineers' end-to-end tests start these bundles while someone rebuilds: a reader must
 * see the old file or the new one, never half of one. Hence a temporary file and a rename.
 */
async function writeAtomically(file: string, data: Uint8Array | string, mode = 0o644) {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, data, { mode });
  await chmod(temp, mode); // writeFile's mode is filtered by the umask
  await rename(temp, file);
}

/**
 * The text of `<name>.mjs.LEGAL.txt`: each bundled package's name, version and licence, then
 * the legal comments esbuild extracted from the code, so an image that ships the bundle can
 * ship the notices with it.
 */
function legalNotice(spec: BundleSpec, inputs: string[], comments: string): string {
  const packages = bundledPackages(inputs);
  const lines = [
    `Third-party code bundled into ${path.basename(spec.outfile)}:`,
    "",
    ...packages.map((p) => `  ${p.name}@${p.version}  ${p.license}`),
    "",
    comments ? `Legal comments found in that code:\n\n${comments}` : "",
  ];
  return `${lines.join("\n").trimEnd()}\n`;
}

interface PackageInfo {
  name: string;
  version: string;
  license: string;
}

/** The npm packages whose files ended up in the bundle, from its inputs in esbuild's metafile. */
function bundledPackages(inputs: string[]): PackageInfo[] {
  const dirs = new Set<string>();
  for (const input of inputs) {
    // pnpm paths look like node_modules/.pnpm/<id>/node_modules/<name>/...; the package is the
    // last node_modules segment, and a scoped name takes two path parts.
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input.replaceAll("\\", "/"));
    if (match?.[1]) dirs.add(match[1]);
  }
  const packages: PackageInfo[] = [];
  for (const dir of dirs) {
    const manifest = path.resolve(ROOT, dir, "package.json");
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(readFileSync(manifest, "utf8")) as Record<string, unknown>;
    packages.push({
      name: String(pkg.name),
      version: String(pkg.version),
      license: typeof pkg.license === "string" ? pkg.license : "see the package",
    });
  }
  return packages.sort((a, b) => a.name.localeCompare(b.name));
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(2)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Prints one line per bundle, then every failure with esbuild's own formatted message. */
async function report(results: BundleResult[], flags: Set<string>): Promise<void> {
  const width = Math.max(...results.map((r) => r.spec.name.length));
  for (const r of results) {
    const size = r.ok ? formatSize(r.bytes).padStart(10) : "FAILED".padStart(10);
    const notes = [
      r.warnings.length > 0 ? `${r.warnings.length} warning(s)` : "",
      r.nativeAddons.length > 0 ? `${r.nativeAddons.length} native addon(s) left out` : "",
    ].filter(Boolean);
    console.log(`  ${r.spec.name.padEnd(width)}  ${size}  ${notes.join(", ")}`.trimEnd());
  }

  for (const r of results) {
    for (const addon of r.nativeAddons) {
      console.log(
        `\nnote: ${r.spec.name}: left out native addon ${addon}; a single-file bundle cannot ` +
          "carry compiled code, so that code path fails at run time",
      );
    }
    if (flags.has("--analyze") && r.ok) {
      const top = r.byPackage.slice(0, 12).map(([name, bytes]) => {
        return `    ${formatSize(bytes).padStart(10)}  ${name}`;
      });
      console.log(`\nlargest parts of ${r.spec.name}:\n${top.join("\n")}`);
    }
    if (flags.has("--verbose") && r.warnings.length > 0) {
      const text = await esbuild.formatMessages(r.warnings, { kind: "warning", color: false });
      console.log(`\nwarnings in ${r.spec.name}:\n${text.join("")}`);
    }
    if (!r.ok) {
      const text = await esbuild.formatMessages(r.errors, { kind: "error", color: false });
      console.error(`\ncould not bundle ${r.spec.name} (${path.relative(ROOT, r.spec.entry)}):`);
      console.error(text.join("").trimEnd());
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith("--")));
  const sourcemap = flags.has("--sourcemap");
  const names = argv.filter((a) => !a.startsWith("--"));
  const all = findBundles();
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length > 0) {
    console.error(
      `could not build ${unknown.join(", ")}: no such program; ` +
        `expected one of: ${all.map((s) => s.name).join(", ")}`,
    );
    return 2;
  }
  const specs = names.length > 0 ? all.filter((s) => names.includes(s.name)) : all;
  if (specs.length === 0) {
    console.error("could not build anything: no containers/*/src/main.ts exists yet");
    return 1;
  }

  const version = bundleVersion();
  const started = performance.now();
  console.log(`bundling ${specs.length} program(s), version ${version}`);
  if (!sourcemap) await Promise.all(specs.map((s) => rm(`${s.outfile}.map`, { force: true })));
  const results = await buildBundles(specs, { version, sourcemap });
  await report(results, flags);

  const failed = results.filter((r) => !r.ok);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (failed.length > 0) {
    const names = failed.map((r) => r.spec.name).join(", ");
    console.error(`\nbuild failed for ${failed.length} of ${results.length}: ${names}`);
    return 1;
  }
  console.log(`built ${results.length} bundle(s) in ${seconds} s`);
  return 0;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
