import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckoutError } from "../src/checkout-run.ts";
import { prepareCredentials } from "../src/credentials.ts";
import { parseRepoUrl } from "../src/url.ts";
import { checkout } from "./fixture.ts";
import { HttpGitServer, Origin, removeDir, tempDir } from "./helpers.ts";

const root = tempDir("creds");
const token = "ghs_0123456789abcdefTOKEN";
const auth = `Basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`;
const server = new HttpGitServer(root, auth);
let tip: string;

beforeAll(async () => {
  await server.start();
  const o = new Origin(root, "private");
  await o.commit({ "secret-project.txt": "ok\n" });
  tip = await o.commits(2);
}, 30_000);

afterAll(async () => {
  await server.stop();
  removeDir(root);
});

describe("HTTPS token by file", () => {
  it("authenticates through the environment and writes the token nowhere", async () => {
    const url = server.url("private");
    const credentials = await prepareCredentials({ httpsToken: `${token}\n` }, parseRepoUrl(url));
    const dest = join(root, "ws-token");
    const { result } = await checkout(url, dest, {
      credentials,
      target: { commit: tip, ref: "main" },
    });

    expect(result).toMatchObject({ source: "miss", commit: tip });
    expect(server.seenAuth).toContain(auth);
    const config = readFileSync(join(dest, ".git", "config"), "utf8");
    expect(config).not.toContain(token);
    expect(config).not.toContain(auth.slice(6));
    expect(readFileSync(`${dest}.checkout.json`, "utf8")).not.toContain(token);
  });

  it("moves credentials embedded in the URL into a header, out of .git/config", async () => {
    const url = server.url("private").replace("http://", `http://x-access-token:${token}@`);
    const repo = parseRepoUrl(url);
    const credentials = await prepareCredentials({}, repo);
    const dest = join(root, "ws-embedded");
    const { result } = await checkout(url, dest, { credentials, target: { commit: tip } });
    expect(result.commit).toBe(tip);
    expect(result.url).not.toContain(token);
    expect(readFileSync(join(dest, ".git", "config"), "utf8")).not.toContain(token);
  });

  it("keeps the token out of the error when origin refuses it", async () => {
    const url = server.url("private");
    const credentials = await prepareCredentials(
      { httpsToken: "wrong-token-value-1234" },
      parseRepoUrl(url),
    );
    const err = await checkout(url, join(root, "ws-wrong"), {
      credentials,
      target: { commit: tip },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckoutError);
    expect((err as CheckoutError).code).toBe("origin-auth");
    expect((err as Error).message).toContain("origin refused the credentials");
    expect((err as Error).message).toContain("--https-token-file");
    expect(String((err as Error).message)).not.toContain("wrong-token-value-1234");
    expect(credentials.secrets).toContain("wrong-token-value-1234");
  });
});

describe("SSH key by file", () => {
  it("uses a private 0600 copy of the key and strict known_hosts, by GIT_SSH_COMMAND", async () => {
    const known = join(root, "known hosts");
    writeFileSync(known, "");
    const c = await prepareCredentials(
      { sshKey: "not a real key", knownHostsFile: known },
      parseRepoUrl("git@h:o/r"),
    );
    const cmd = c.env.GIT_SSH_COMMAND as string;
    expect(cmd).toMatch(/^ssh -o BatchMode=yes -i '[^']+' -o IdentitiesOnly=yes/);
    expect(cmd).toContain(`UserKnownHostsFile='${known}'`);
    expect(cmd).toContain("StrictHostKeyChecking=yes");
    const copy = /-i '([^']+)'/.exec(cmd)?.[1] as string;
    const { statSync, existsSync } = await import("node:fs");
    expect(statSync(copy).mode & 0o777).toBe(0o600);
    expect(readFileSync(copy, "utf8")).toBe("not a real key\n");
    await c.dispose();
    expect(existsSync(copy)).toBe(false);
  });
});
