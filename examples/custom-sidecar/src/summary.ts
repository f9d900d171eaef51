import type { TestCase } from "./junit.ts";

/** What the sidecar posts: totals, the slowest cases and every failure. */
export interface TestSummary {
  files: number;
  tests: number;
  passed: number;
  failed: number;
  errors: number;
  skipped: number;
  duration_seconds: number;
  slowest: { suite: string; name: string; seconds: number }[];
  failures: { suite: string; name: string; message?: string }[];
  /** Reports that could not be read, with why. */
  unreadable: { path: string; error: string }[];
}

// A summary is a message, not a dump: a run with thousands of failures lists the first ones.
const MAX_FAILURES = 100;

export function summarise(
  reports: { path: string; cases: TestCase[] }[],
  unreadable: TestSummary["unreadable"],
  slowestCount: number,
): TestSummary {
  const cases = reports.flatMap((r) => r.cases);
  const count = (status: TestCase["status"]) => cases.filter((c) => c.status === status).length;
  const bySlowest = [...cases].sort((a, b) => b.time - a.time).slice(0, slowestCount);
  const broken = cases.filter((c) => c.status === "failed" || c.status === "error");
  return {
    files: reports.length,
    tests: cases.length,
    passed: count("passed"),
    failed: count("failed"),
    errors: count("error"),
    skipped: count("skipped"),
    duration_seconds: Number(cases.reduce((sum, c) => sum + c.time, 0).toFixed(3)),
    slowest: bySlowest.map((c) => ({ suite: c.suite, name: c.name, seconds: c.time })),
    failures: broken
      .slice(0, MAX_FAILURES)
      .map((c) => ({ suite: c.suite, name: c.name, message: c.message })),
    unreadable,
  };
}
