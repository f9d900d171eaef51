import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "shared/*/test/**/*.test.ts",
      "cli/test/**/*.test.ts",
      "containers/*/test/**/*.test.ts",
      "examples/*/test/**/*.test.ts",
      "test/**/*.test.ts",
    ],
    // The suites start real servers and child processes; on two cores a generous timeout
    // keeps a loaded machine from turning slowness into failures. No test asserts speed.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
