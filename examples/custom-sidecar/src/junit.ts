import { XMLParser } from "fast-xml-parser";

/** One test case as a JUnit report states it. */
export interface TestCase {
  suite: string;
  name: string;
  classname?: string;
  /** Seconds, as JUnit writes them. */
  time: number;
  status: "passed" | "failed" | "error" | "skipped";
  message?: string;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  // These may occur once or many times; always read them as lists.
  isArray: (name) => ["testsuite", "testcase", "failure", "error", "skipped"].includes(name),
});

type Node = Record<string, unknown>;

/**
 * The test cases of one JUnit XML report. Both layouts occur: a `<testsuites>` root holding
 * suites (Node's, vitest's, Maven Surefire's aggregate reports) and a bare `<testsuite>` root
 * (Surefire per class). Suites may nest (vitest writes one per file). Throws on malformed XML
 * or a document with neither root.
 */
export function parseJUnit(xml: string): TestCase[] {
  const doc = parser.parse(xml, true) as Node;
  const suites = (doc.testsuites as Node | undefined)?.testsuite ?? doc.testsuite;
  if (!Array.isArray(suites)) throw new Error("neither <testsuites> nor <testsuite> at the root");
  const cases: TestCase[] = [];
  const visit = (suite: Node, prefix: string) => {
    const name = [prefix, String(suite.name ?? "")].filter(Boolean).join(" › ");
    for (const c of (suite.testcase as Node[] | undefined) ?? []) cases.push(testCase(name, c));
    for (const inner of (suite.testsuite as Node[] | undefined) ?? []) visit(inner, name);
  };
  for (const suite of suites as Node[]) visit(suite, "");
  return cases;
}

function testCase(suite: string, node: Node): TestCase {
  const first = (key: string) => (node[key] as Node[] | undefined)?.[0];
  const failure = first("failure");
  const error = first("error");
  const problem = failure ?? error;
  const status = failure ? "failed" : error ? "error" : node.skipped ? "skipped" : "passed";
  const message = problem
    ? String(problem.message ?? problem["#text"] ?? "").split("\n")[0]
    : undefined;
  return {
    suite,
    name: String(node.name ?? ""),
    classname: node.classname === undefined ? undefined : String(node.classname),
    time: Number(node.time ?? 0) || 0,
    status,
    ...(message ? { message } : {}),
  };
}
