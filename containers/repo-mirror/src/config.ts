import { duration, option, z } from "@buildpod/config";

/** Options both commands take: where the cache is and how to authenticate to origin. */
const shared = {
  cache: option({
    schema: z.string().default("/cache/git"),
    description: "the mirror cache (read-only for checkout; sync owns it)",
    metavar: "DIR",
  }),
  marksDir: option({
    schema: z.string().optional(),
    description:
      "where checkout leaves broken-mirror marks for sync; a writable volume when the cache is read-only (default <cache>/v1/marks)",
    metavar: "DIR",
  }),
  sshKey: option({
    schema: z.string().optional(),
    description: "SSH private key for ssh:// and git@host: URLs",
    secret: true,
  }),
  knownHostsFile: option({
    schema: z.string().optional(),
    description: "known_hosts file; with it, unknown host keys are refused",
    metavar: "FILE",
  }),
  httpsToken: option({
    schema: z.string().optional(),
    description: "token for https:// URLs, sent as basic auth to origin's host only",
    secret: true,
  }),
  httpsUsername: option({
    schema: z.string().default("x-access-token"),
    description: "user name sent with the HTTPS token (GitHub: x-access-token, GitLab: oauth2)",
  }),
};

/** `repo-mirror checkout`: the init container that puts the job's commit into the workspace. */
export const checkoutOptions = {
  repo: option({
    schema: z.string({ error: "give the repository URL with --repo or BUILDKITE_REPO" }),
    description: "repository URL (https, ssh, git@host:path, git, file)",
    aliases: ["BUILDKITE_REPO"],
    metavar: "URL",
  }),
  commit: option({
    schema: z.string().default("HEAD"),
    description: "commit to check out (full or abbreviated hex), or HEAD for the tip of --ref",
    aliases: ["BUILDKITE_COMMIT"],
    metavar: "SHA",
  }),
  ref: option({
    schema: z.string().optional(),
    description:
      "branch, tag or refspec that leads to the commit (default: BUILDKITE_REFSPEC, the pull request head, BUILDKITE_TAG or BUILDKITE_BRANCH)",
    metavar: "REF",
  }),
  dest: option({
    schema: z.string().default("/workspace/build/buildkite"),
    description: "the workspace directory to check out into",
    aliases: ["BUILDKITE_BUILD_CHECKOUT_PATH"],
    metavar: "DIR",
  }),
  mode: option({
    schema: z.enum(["dissociate", "reference"]).default("dissociate"),
    description:
      "dissociate: the workspace gets its own copy of the objects; reference: it borrows them from the cache (needs the cache mounted wherever git runs)",
  }),
  submodules: option({
    schema: z.boolean().default(true),
    description: "check out submodules, from their mirrors when the cache has them",
    aliases: ["BUILDKITE_GIT_SUBMODULES"],
  }),
  wipe: option({
    schema: z.boolean().default(false),
    description: "empty a non-empty destination that holds something else instead of failing",
  }),
  strictOrigin: option({
    schema: z.boolean().default(false),
    description: "fail when origin is unreachable instead of using the cache's copy of the ref",
  }),
  checkoutWorkers: option({
    schema: z.number().int().min(0).max(64).default(0),
    description: "parallel workers writing the work tree (git checkout.workers); 0: one per CPU",
  }),
  record: option({
    schema: z.string().optional(),
    description: "JSON record of what was checked out (default <dest>.checkout.json, next to it)",
    metavar: "FILE",
  }),
  progressInterval: option({
    schema: duration.prefault("5s"),
    description: "how often progress lines are logged during long phases",
    metavar: "DURATION",
  }),
  ...shared,
};

/** `repo-mirror sync URL...`: creates, updates, repairs and gcs the mirrors in the cache. */
export const syncOptions = {
  urlsFile: option({
    schema: z.string().optional(),
    description: "file listing repository URLs, one per line (# comments), besides the arguments",
    metavar: "FILE",
  }),
  lockTimeout: option({
    schema: duration.prefault("5m"),
    description: "how long to wait for another sync's lock on a mirror",
    metavar: "DURATION",
  }),
  lockStaleAfter: option({
    schema: duration.prefault("10m"),
    description: "a lock whose holder stopped refreshing it this long ago is taken over",
    metavar: "DURATION",
  }),
  gc: option({
    schema: z.enum(["auto", "always", "never"]).default("auto"),
    description: "run git gc on updated mirrors: auto (after --gc-interval), always or never",
  }),
  gcInterval: option({
    schema: duration.prefault("24h"),
    description: "with --gc auto: the least time between two gcs of a mirror",
    metavar: "DURATION",
  }),
  gcPruneExpire: option({
    schema: z
      .string()
      .regex(/^[A-Za-z0-9.:_ -]+$/, "expected a git date such as 2.weeks.ago")
      .default("2.weeks.ago"),
    description: "unreachable objects younger than this survive gc (git gc --prune=<date>)",
    metavar: "DATE",
  }),
  retiredGrace: option({
    schema: duration.prefault("1h"),
    description: "a replaced mirror is deleted this long after it was replaced",
    metavar: "DURATION",
  }),
  parallel: option({
    schema: z.number().int().min(1).max(32).default(2),
    description: "mirrors synced at once",
  }),
  ...shared,
};
