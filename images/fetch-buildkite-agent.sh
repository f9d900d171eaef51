#!/bin/sh
# Downloads one buildkite-agent release for one architecture, checks it against the SHA256SUMS
# file published with the release, and installs it into OUT_DIR:
#
#   OUT_DIR/buildkite-agent  the agent binary (mode 0755)
#   OUT_DIR/VERSION          the release version, one line (agent-injector logs and records it)
#   OUT_DIR/SHA256           "<sha256>  buildkite-agent", the binary's own checksum
#
# usage: fetch-buildkite-agent.sh VERSION ARCH OUT_DIR
#   VERSION  release without the leading v, e.g. 3.137.0
#   ARCH     amd64 or arm64 (Docker's TARGETARCH names)
# BUILDKITE_AGENT_RELEASES overrides the download base (a mirror, or a test server).
#
# Runs in the agent-injector image build (images/Dockerfile) and in test/images.test.ts; it
# needs only a POSIX shell, curl, awk, sha256sum, tar and install (busybox or GNU).
set -eu

if [ "$#" -ne 3 ]; then
  echo "usage: $0 VERSION ARCH OUT_DIR" >&2
  exit 2
fi
version=$1
arch=$2
out=$3
releases=${BUILDKITE_AGENT_RELEASES:-https://github.com/buildkite/agent/releases/download}

if [ -z "$version" ]; then
  echo "could not fetch buildkite-agent: VERSION is empty; set BUILDKITE_AGENT_VERSION in docker-bake.hcl" >&2
  exit 2
fi
case "$arch" in
  amd64 | arm64) ;;
  *)
    echo "could not fetch buildkite-agent: no release for architecture '$arch'; build for amd64 or arm64" >&2
    exit 2
    ;;
esac

tarball="buildkite-agent-linux-$arch-$version.tar.gz"
sums="buildkite-agent-$version.SHA256SUMS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

for file in "$tarball" "$sums"; do
  if ! curl -fsSL --retry 5 --retry-delay 2 -o "$file" "$releases/v$version/$file"; then
    echo "could not fetch buildkite-agent: download of $releases/v$version/$file failed; check that release v$version exists" >&2
    exit 1
  fi
done

# The sums file has one "<sha256>  <asset>" line per release asset (a "*" before the name marks
# binary mode). Exactly one line must name our tarball; sha256sum -c then compares the bytes.
awk -v f="$tarball" '$2 == f || $2 == "*" f { print $1 "  " f }' "$sums" >expected.sha256
if [ "$(wc -l <expected.sha256)" -ne 1 ]; then
  echo "could not verify buildkite-agent: $sums has no single entry for $tarball" >&2
  exit 1
fi
if ! sha256sum -c expected.sha256 >/dev/null 2>&1; then
  echo "could not verify buildkite-agent: $tarball does not match its checksum in $sums; the download is corrupt or was tampered with" >&2
  exit 1
fi

# Release tarballs hold ./buildkite-agent plus sample config and hooks; only the binary is kept.
tar -xzf "$tarball" ./buildkite-agent
mkdir -p "$out"
install -m 0755 buildkite-agent "$out/buildkite-agent"
printf '%s\n' "$version" >"$out/VERSION"
(cd "$out" && sha256sum buildkite-agent) >"$out/SHA256"
echo "fetched buildkite-agent $version for linux/$arch, sha256 verified"
