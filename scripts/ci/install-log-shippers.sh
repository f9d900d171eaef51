#!/bin/sh
# Installs the two peer log shippers the log-exporter benchmark compares against.
#
# Debian makes rsyslog and syslog-ng-core conflict, so only one can be installed:
#   - rsyslog (+ rsyslog-elasticsearch for omelasticsearch) is installed with apt, as root;
#   - syslog-ng (core, scl for elasticsearch-http(), mod-http, and the libraries Debian would
#     pull in that are not on the machine) is fetched with `apt-get download` and unpacked with
#     `dpkg -x` into a private folder, then run from there with LD_LIBRARY_PATH and --module-path.
#
# Usage: scripts/ci/install-log-shippers.sh [DIR]   (DIR default: $HOME/.cache/buildpod/syslog-ng)
# Prints the syslog-ng folder on its last line. Idempotent: does nothing that is already done.
set -eu

dest="${1:-${HOME:-/root}/.cache/buildpod/syslog-ng}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# rsyslog through apt.
if ! command -v rsyslogd >/dev/null 2>&1 || [ ! -e /usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq rsyslog rsyslog-elasticsearch >/dev/null
fi

# syslog-ng unpacked privately.
if [ ! -x "$dest/root/usr/sbin/syslog-ng" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    # The packages and the shared libraries syslog-ng needs that Debian 12 does not have by default.
    packages="syslog-ng-core syslog-ng-scl syslog-ng-mod-http"
    for lib in libivykis0 libnet1 libpcre3; do
      dpkg -s "$lib" >/dev/null 2>&1 || packages="$packages $lib"
    done
    apt-get download $packages >/dev/null 2>&1 || {
      as_root apt-get update -qq
      apt-get download $packages >/dev/null
    }
  )
  mkdir -p "$dest/root"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest/root"; done
fi

echo "$dest"
