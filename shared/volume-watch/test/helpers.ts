// Shared test helpers: a fresh directory per test and polling waits (no fixed sleeps that a
// loaded machine could outrun).

import { mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { LineBatch, Tailer } from "@buildpod/volume-watch";
import { afterEach } from "vitest";

const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory removed after the test; `root` inside it, `state` beside it. */
export function scratchDir(): { dir: string; root: string; state: string } {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), "volume-watch-")));
  made.push(dir);
  const root = path.join(dir, "root");
  const state = path.join(dir, "state");
  mkdirSync(root);
  mkdirSync(state);
  return { dir, root, state };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws). */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Pulls batches until `until` holds for the lines collected so far, acking every batch.
 * Returns all lines' texts and the batches.
 */
export async function collect(
  tailer: Tailer,
  until: (texts: string[], batches: LineBatch[]) => boolean,
  timeoutMs = 20_000,
): Promise<{ texts: string[]; batches: LineBatch[] }> {
  const texts: string[] = [];
  const batches: LineBatch[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!until(texts, batches)) {
    if (Date.now() > deadline) break;
    const remaining = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), remaining);
    });
    const batch = await Promise.race([tailer.next(), timeout]);
    clearTimeout(timer);
    if (batch === "timeout") break;
    if (batch === undefined) break;
    batches.push(batch);
    for (const line of batch.lines) texts.push(line.text);
    tailer.ack(batch);
  }
  if (!until(texts, batches)) {
    throw new Error(
      `timed out collecting lines; got ${texts.length}, last: ${JSON.stringify(texts.slice(-3))}`,
    );
  }
  return { texts, batches };
}
