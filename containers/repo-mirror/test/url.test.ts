import { describe, expect, it } from "vitest";
import { checkCommit, checkRef, fetchRefspec, refFromBuildkiteEnv } from "../src/refs.ts";
import { parseRepoUrl, UsageError } from "../src/url.ts";

describe("one cache entry per repository", () => {
  const same = [
    "https://github.com/Org/repo",
    "https://github.com/Org/repo.git",
    "https://github.com/Org/repo/",
    "https://GitHub.com:443/Org/repo.git/",
    "http://github.com/Org/repo",
    "git@github.com:Org/repo.git",
    "git@github.com:Org/repo",
    "ssh://git@github.com/Org/repo.git",
    "ssh://git@github.com:22/Org/repo",
    "git+ssh://github.com/Org/repo.git",
    "git://github.com/Org/repo.git",
    "https://user:token@github.com/Org/repo.git",
  ];
  it.each(same)("%s maps to the one key", (url) => {
    expect(parseRepoUrl(url).key).toBe(parseRepoUrl(same[0] as string).key);
  });

  // Each pair collides under buildkite-agent's "every non-alphanumeric becomes -" naming.
  const distinct: Array<[string, string]> = [
    ["https://github.com/org/my-repo", "https://github.com/org/my.repo"],
    ["https://github.com/org-a/b", "https://github.com/org/a-b"],
    ["https://host/a/b", "https://host:8443/a/b"],
    ["https://github.com/org/Repo", "https://github.com/org/repo"],
    ["file:///srv/git/a", "https://srv/git/a"],
  ];
  it.each(distinct)("%s and %s stay apart", (a, b) => {
    expect(parseRepoUrl(a).key).not.toBe(parseRepoUrl(b).key);
  });

  it("keeps a readable prefix and a 20-digit hash", () => {
    expect(parseRepoUrl("git@github.com:buildkite/agent.git").key).toMatch(
      /^github\.com-buildkite-agent-[0-9a-f]{20}$/,
    );
  });

  it("moves embedded credentials out of the URL git is given", () => {
    const u = parseRepoUrl("https://bot:s3cret@example.com/org/repo.git");
    expect(u.fetchUrl).toBe("https://example.com/org/repo.git");
    expect(u.credentials).toEqual({ username: "bot", password: "s3cret" });
  });
});

describe("argument injection is refused before git runs", () => {
  const urls = [
    "--upload-pack=touch /tmp/pwned",
    "-oProxyCommand=touch /tmp/pwned",
    "ext::sh -c touch% /tmp/pwned",
    "fd::3",
    "ssh://-oProxyCommand=touch%20pwned/repo",
    "-x:repo",
    "https://host/org/repo\n--upload-pack=x",
    "",
    "ftp://host/repo",
  ];
  it.each(urls)("repo %j", (url) => {
    expect(() => parseRepoUrl(url)).toThrow(UsageError);
  });

  it("names the option in the message", () => {
    expect(() => parseRepoUrl("--upload-pack=x")).toThrow(
      /--repo "--upload-pack=x" starts with "-"/,
    );
  });

  const refs = [
    "--upload-pack=x",
    "-b",
    "main..other",
    "a b",
    "refs/heads/x.lock",
    "x:y:z",
    "@{-1}",
    "",
  ];
  it.each(refs)("ref %j", async (ref) => {
    await expect(checkRef(ref)).rejects.toThrow(UsageError);
  });

  it.each([
    "main",
    "release/1.2",
    "refs/pull/7/head",
    "+refs/pull/7/head:refs/remotes/pr/7",
    "v1.0.0",
  ])("accepts ref %j", async (ref) => {
    await expect(checkRef(ref)).resolves.toBe(ref);
  });

  it.each(["--all", "HEAD~1", "main", "xyz", "abc"])("refuses commit %j", (c) => {
    expect(() => checkCommit(c)).toThrow(UsageError);
  });

  it("accepts HEAD and hex names, lowercased", () => {
    expect(checkCommit("HEAD")).toBe("HEAD");
    expect(checkCommit("ABCDEF1")).toBe("abcdef1");
  });
});

describe("Buildkite refs", () => {
  it.each([
    [{ BUILDKITE_REFSPEC: "refs/heads/x", BUILDKITE_BRANCH: "y" }, "refs/heads/x"],
    [{ BUILDKITE_PULL_REQUEST: "42", BUILDKITE_BRANCH: "y" }, "refs/pull/42/head"],
    [{ BUILDKITE_PULL_REQUEST: "false", BUILDKITE_BRANCH: "y" }, "y"],
    [
      {
        BUILDKITE_PULL_REQUEST: "42",
        BUILDKITE_PIPELINE_PROVIDER: "gitlab",
        BUILDKITE_BRANCH: "y",
      },
      "y",
    ],
    [{ BUILDKITE_TAG: "v1", BUILDKITE_BRANCH: "v1" }, "refs/tags/v1"],
    [{}, undefined],
  ])("%j -> %s", (env, ref) => {
    expect(refFromBuildkiteEnv(env)).toBe(ref);
  });

  it("fetches branches into their remote-tracking ref", () => {
    expect(fetchRefspec("main")).toBe("+refs/heads/main:refs/remotes/origin/main");
    expect(fetchRefspec("refs/pull/1/head")).toBe("refs/pull/1/head");
  });
});
