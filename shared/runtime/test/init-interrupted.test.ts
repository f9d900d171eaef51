import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../src/index.ts";
import { Child } from "./fixtures/child.ts";

const INIT = join(import.meta.dirname, "fixtures", "init-waiter.ts");

// An init container stopped by SIGTERM (the pod deleted while it runs) has no workload to speak
// of: it says it was stopped, and ends as an explained interruption, not as a bug.
describe("an init container stopped by a signal", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "init-interrupted-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("logs that it stops, exits 130 with one line and a summary, and reports no bug", async () => {
    const child = new Child(INIT, [], { BUILDPOD_LIFECYCLE_DIR: dir });
    await child.waitFor((e) => e.msg === "waiting");
    child.process.kill("SIGTERM");
    const exited = await child.exited;

    expect(exited.code).toBe(ExitCode.INTERRUPTED);
    const messages = child.events.map((e) => String(e.msg));
    expect(messages).toContain("received SIGTERM: stopping");
    expect(messages.some((m) => m.startsWith("workload finished"))).toBe(false);
    expect(messages.some((m) => m.startsWith("internal error"))).toBe(false);
    const errors = child.events.filter((e) => e.level === "error");
    expect(errors.map((e) => e.msg)).toEqual([
      "could not finish wait: interrupted (received SIGTERM) before its work was done",
    ]);
    const status = JSON.parse(await readFile(join(dir, "status", "init-waiter.json"), "utf8"));
    expect(status).toMatchObject({
      exit_code: 130,
      exit_reason: "INTERRUPTED",
      summary: { interrupted: true, code: "BUILDPOD_INTERRUPTED" },
    });
  });
});
