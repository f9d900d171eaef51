import { formatProblem, labelsOf, parseExposition, type Sample } from "@buildpod/metrics-exporter";
import { describe, expect, it } from "vitest";

const parse = (text: string) => parseExposition(text, "dir/a.prom");
const problems = (text: string) => parse(text).problems.map(formatProblem);

describe("parseExposition accepts", () => {
  it("families with HELP, TYPE, labels, special values and timestamps", () => {
    const r = parse(
      [
        "# HELP build_seconds How long the build took.\\nSecond line, with \\\\ backslash.",
        "# TYPE build_seconds gauge",
        'build_seconds{step="compile",os="linux"} 12.5',
        'build_seconds{step="test" , os="linux",} +Inf 1700000000000',
        "# a plain comment",
        "",
        "untyped_thing NaN",
        "negative -Inf",
        "",
      ].join("\n"),
    );
    expect(r.problems).toEqual([]);
    expect(r.timestamps).toBe(1);
    const [build, untyped, negative] = r.families;
    expect(build?.help).toBe("How long the build took.\nSecond line, with \\ backslash.");
    expect(build?.type).toBe("gauge");
    expect(build?.samples.map((s) => s.series)).toEqual([
      'build_seconds{os="linux",step="compile"}',
      'build_seconds{os="linux",step="test"}',
    ]);
    expect(build?.samples[1]?.value).toBe(Infinity);
    expect(build?.samples[1]?.timestampMs).toBe(1700000000000);
    expect(untyped?.type).toBe("untyped");
    expect(Number.isNaN(untyped?.samples[0]?.value)).toBe(true);
    expect(negative?.samples[0]?.value).toBe(-Infinity);
  });

  it("a label value with a newline, quotes and backslashes", () => {
    const r = parse('msg{text="line one\\nsaid \\"hi\\" \\\\ done"} 1\n');
    expect(r.problems).toEqual([]);
    expect(labelsOf(r.families[0]?.samples[0] as Sample)).toEqual([
      "text",
      'line one\nsaid "hi" \\ done',
    ]);
    expect(r.families[0]?.samples[0]?.series).toBe(
      'msg{text="line one\\nsaid \\"hi\\" \\\\ done"}',
    );
  });

  it("a histogram and a summary with extra labels, each label set kept apart", () => {
    const r = parse(
      [
        "# TYPE latency histogram",
        'latency_bucket{route="a",le="0.1"} 1',
        'latency_bucket{route="a",le="1"} 3',
        'latency_bucket{route="a",le="+Inf"} 4',
        'latency_sum{route="a"} 2.5',
        'latency_count{route="a"} 4',
        'latency_bucket{route="b",le="0.1"} 0',
        'latency_bucket{route="b",le="+Inf"} 2',
        'latency_count{route="b"} 2',
        "# TYPE rpc summary",
        'rpc{quantile="0.5"} 0.2',
        'rpc{quantile="0.99"} 0.9',
        "rpc_sum 10",
        "rpc_count 30",
        "",
      ].join("\n"),
    );
    expect(r.problems).toEqual([]);
    expect(r.families.map((f) => [f.name, f.type, f.samples.length])).toEqual([
      ["latency", "histogram", 8],
      ["rpc", "summary", 4],
    ]);
  });

  it("one identity for the same labels however they are written", () => {
    const canonical = parse('a{x="1",y="q\\"r"} 1\n').families[0]?.samples[0]?.series;
    expect(canonical).toBe('a{x="1",y="q\\"r"}');
    const loose = parse('a { y = "q\\"r" , x="1", } 1\n').families[0]?.samples[0]?.series;
    expect(loose).toBe(canonical);
    expect(problems('a{x="1",y="2"} 1\na{y="2",x="1"} 2\n').join()).toContain(
      "already appears on line 1",
    );
  });

  it("an empty file", () => {
    expect(parse("")).toEqual({ families: [], problems: [], timestamps: 0 });
  });
});

describe("parseExposition rejects, naming file, line and metric", () => {
  const cases: [name: string, text: string, expected: string][] = [
    ["no final newline", "a 1\nb 2", "dir/a.prom:2: the last line has no final newline"],
    ["CRLF line endings", "a 1\r\n", "dir/a.prom:1: metric a: the line ends with CR"],
    [
      "a bad metric name",
      "1abc 1\n",
      'dir/a.prom:1: metric 1abc: "1abc" is not a valid metric name',
    ],
    ["a value that is not a number", "a abc\n", 'dir/a.prom:1: metric a: "abc" is not a number'],
    [
      "three numbers",
      "a 1 2 3\n",
      'dir/a.prom:1: metric a: unexpected text after the value and timestamp: "3"',
    ],
    ["a float timestamp", "a 1 2.5\n", 'metric a: "2.5" is not a timestamp'],
    [
      "a blank after the value",
      "a 1 \n",
      "dir/a.prom:1: metric a: the line ends in a space or tab",
    ],
    ["a blank after the timestamp", "a 1 2\t\n", "metric a: the line ends in a space or tab"],
    ["a value beyond float64", "a 1e400\n", 'metric a: "1e400" is beyond the range of a float64'],
    ["a TYPE with a blank after it", "# TYPE a gauge \na 1\n", 'metric a: unknown type "gauge "'],
    ["a duplicate label name", 'a{x="1",x="2"} 1\n', "metric a: label x appears twice"],
    ["a reserved label name", 'a{__x="1"} 1\n', "label name __x is reserved"],
    [
      "a bad escape in a label value",
      'a{x="\\t"} 1\n',
      'invalid escape "\\t" in the value of label x',
    ],
    ["an unclosed label value", 'a{x="1} 1\n', "the value of label x has no closing quote"],
    [
      "a bad escape in HELP",
      '# HELP a say \\"hi\\"\na 1\n',
      'dir/a.prom:1: metric a: invalid escape "\\""',
    ],
    [
      "a second HELP",
      "# HELP a x\n# HELP a y\na 1\n",
      "dir/a.prom:2: metric a: a second HELP line",
    ],
    [
      "a second TYPE",
      "# TYPE a gauge\n# TYPE a gauge\n",
      "dir/a.prom:2: metric a: a second TYPE line",
    ],
    [
      "TYPE after samples",
      "a 1\n# TYPE a gauge\n",
      "dir/a.prom:2: metric a: the TYPE line comes after samples of this metric (line 1)",
    ],
    ["an unknown type", "# TYPE a gaugehistogram\n", 'unknown type "gaugehistogram"'],
    [
      "a split family",
      'a 1\nb 1\na{x="1"} 2\n',
      "dir/a.prom:3: metric a: samples for a after other metrics",
    ],
    [
      "the same series twice",
      'a{x="1"} 1\na{x="1"} 2\n',
      'dir/a.prom:2: metric a: the series a{x="1"} already appears on line 1',
    ],
    [
      "a histogram without +Inf",
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n',
      'has no le="+Inf" bucket',
    ],
    [
      "buckets out of order",
      '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\n',
      'dir/a.prom:3: metric h_bucket: bucket le="1" comes after a larger or equal bound (line 2)',
    ],
    ["a bucket without le", "# TYPE h histogram\nh_bucket 1\n", "needs an le label"],
    [
      "count differing from +Inf",
      '# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_count 4\n',
      'dir/a.prom:3: metric h_count: _count 4 differs from the le="+Inf" bucket 3',
    ],
    ["a summary without quantile", "# TYPE s summary\ns 1\n", "needs a quantile label"],
    ["a quoted UTF-8 name", '{"my.metric"} 1\n', "quoted metric names need format 1.0"],
    ["a byte order mark", "\ufeffa 1\n", "byte order mark"],
  ];
  it.each(cases)("%s", (_name, text, expected) => {
    const found = problems(text);
    expect(found.length).toBeGreaterThan(0);
    expect(found.join("\n")).toContain(expected);
  });

  it("the no-final-newline problem is marked incomplete (to be read again later)", () => {
    expect(parse("a 1").problems[0]?.incomplete).toBe(true);
    expect(parse("a x\n").problems[0]?.incomplete).toBeUndefined();
  });

  it("reports every broken line, not just the first", () => {
    expect(problems("a x\nb 1\nc y\n").map((p) => p.split(":")[1])).toEqual(["1", "3"]);
  });
});
