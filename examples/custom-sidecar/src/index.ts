export { parseJUnit, type TestCase } from "./junit.ts";
export { summarise, type TestSummary } from "./summary.ts";
