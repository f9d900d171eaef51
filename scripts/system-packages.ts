/**
 * Makes sure the Debian packages the tests run against (git with `git daemon`, the Prometheus
 * Pushgateway, node_exporter, promtool, ...) are installed. The list is `.ci/apt-packages`, one
 * name a line. (What only the benchmarks need, such as the peer log shippers, the benchmarks
 * install themselves through `scripts/ci/`.)
 *
 *   node scripts/system-packages.ts          install what is missing (needs root and apt-get)
 *   node scripts/system-packages.ts --check  only report what is missing; exit 1 if anything is
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

export function wantedPackages(): string[] {
  const text = readFileSync(path.join(ROOT, ".ci", "apt-packages"), "utf8");
  return [...new Set(text.split("\n").map((l) => l.replace(/#.*/, "").trim()))].filter(Boolean);
}

export function missingPackages(names: string[]): string[] {
  if (names.length === 0) return [];
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const result = spawnSync("dpkg-query", ["-W", "-f=${Package} ${db:Status-Status}\\n", ...names], {
    encoding: "utf8",
  });
  const installed = new Set(
    result.stdout
      .split("\n")
      .filter((l) => l.endsWith(" installed"))
      .map((l) => l.split(" ")[0]),
  );
  return names.filter((n) => !installed.has(n));
}

function install(missing: string[]): void {
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync("/usr/bin/apt-get")) {
    console.error(
      `missing system packages: ${missing.join(" ")}\n` +
        `install them (as root: apt-get install -y ${missing.join(" ")}) and run the tests again`,
    );
    process.exit(1);
  }
  console.log(`installing system packages the tests need: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  // Debian's service packages try to start their daemons; policy-rc.d answering 101 keeps
  // them stopped, since the tests start their own instances on free loopback ports.
  execFileSync(
    "sh",
    [
      "-c",
      "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d",
    ],
    { env },
  );
  try {
    execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
      stdio: "inherit",
      env,
    });
  } finally {
    execFileSync("rm", ["-f", "/usr/sbin/policy-rc.d"]);
  }
}

if (import.meta.main) {
  const missing = missingPackages(wantedPackages());
  if (process.argv.includes("--check")) {
    if (missing.length > 0) console.error(`missing system packages: ${missing.join(" ")}`);
    process.exit(missing.length > 0 ? 1 : 0);
  }
  if (missing.length > 0) install(missing);
}
