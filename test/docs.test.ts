import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("docs", () => {
  it("keep every options table equal to what the schema generates", () => {
    const result = spawnSync(process.execPath, ["scripts/docs.ts", "--check"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  it("give the README a Quick start of exactly two one-line commands", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const section = readme.split("## Quick start")[1]?.split("\n## ")[0] ?? "";
    const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
    expect(blocks).toHaveLength(1);
    const commands = (blocks[0] as string).trim().split("\n");
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/ start$/);
    expect(commands[1]).toMatch(/ test$/);
  });
});
