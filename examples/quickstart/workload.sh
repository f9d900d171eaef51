#!/bin/sh
# The Quick start's workload: a real build of this repository in the checkout repo-mirror made.
# It installs the dependencies from the local pnpm store only, type-checks the whole project
# (tracing every module resolution: the build's long log), runs the tests of one package
# with a JUnit report, and writes metrics. Volumes come from BUILDPOD_* env vars, which hold the
# mount paths in a pod and the local run's folders on this machine.
set -eu
started=$(date +%s)
cd "$BUILDPOD_WORKSPACE"
echo "building $(git rev-parse --short HEAD) of $(git log -1 --format=%s)"

if [ -f "$BUILDPOD_ARTIFACTS_IMPORTED/junit/shared-config.xml" ]; then
  echo "the previous build's report: $(grep -o 'tests="[0-9]*"' "$BUILDPOD_ARTIFACTS_IMPORTED/junit/shared-config.xml" | head -1)"
else
  echo "no report from a previous build"
fi

pnpm=pnpm
command -v pnpm >/dev/null 2>&1 || pnpm="npx -y pnpm@10"
echo "--- installing dependencies (offline, from the local store)"
$pnpm install --offline --frozen-lockfile --ignore-scripts --reporter=append-only 2>&1 | tee "$BUILDPOD_LOGS/install.log"

echo "--- type check"
typecheck=0
node_modules/.bin/tsc -p tsconfig.json --listFiles --traceResolution --extendedDiagnostics \
  > "$BUILDPOD_LOGS/typecheck.log" 2>&1 || typecheck=$?
files=$(grep -cE '^[^ =].*\.[cm]?tsx?$' "$BUILDPOD_LOGS/typecheck.log" || true)
echo "type check exit code $typecheck, $files files read"

echo "--- tests of shared/config"
mkdir -p "$BUILDPOD_ARTIFACTS/junit"
tests=0
node_modules/.bin/vitest run shared/config --reporter=verbose --reporter=junit \
  --outputFile.junit="$BUILDPOD_ARTIFACTS/junit/shared-config.xml" 2>&1 | tee "$BUILDPOD_LOGS/tests.log" || tests=$?
cp "$BUILDPOD_LOGS/typecheck.log" "$BUILDPOD_ARTIFACTS/typecheck.log"

total=$(grep -o 'tests="[0-9]*"' "$BUILDPOD_ARTIFACTS/junit/shared-config.xml" | head -1 | tr -dc 0-9)
failures=$(grep -o 'failures="[0-9]*"' "$BUILDPOD_ARTIFACTS/junit/shared-config.xml" | head -1 | tr -dc 0-9)
duration=$(( $(date +%s) - started ))

# Metrics files are written whole and renamed into place, so no reader sees half of one.
write_metrics() {
  mkdir -p "$1"
  cat > "$1/.build.prom.tmp" <<METRICS
# HELP buildpod_selftest_duration_seconds Wall time of the self-test build.
# TYPE buildpod_selftest_duration_seconds gauge
buildpod_selftest_duration_seconds $duration
# HELP buildpod_selftest_tests Test cases of shared/config by result.
# TYPE buildpod_selftest_tests gauge
buildpod_selftest_tests{result="passed"} $(( ${total:-0} - ${failures:-0} ))
buildpod_selftest_tests{result="failed"} ${failures:-0}
# HELP buildpod_selftest_typecheck_files Files the type check read.
# TYPE buildpod_selftest_typecheck_files gauge
buildpod_selftest_typecheck_files $files
METRICS
  mv "$1/.build.prom.tmp" "$1/build.prom"
}
write_metrics "$BUILDPOD_METRICS/prometheus"
write_metrics "$BUILDPOD_METRICS/prometheus-push"

echo "done in ${duration}s: type check $typecheck, tests $tests"
[ "$typecheck" -eq 0 ] && [ "$tests" -eq 0 ]
