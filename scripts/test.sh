#!/usr/bin/env bash
# Runs every check and test of the project. This is the command the README
# names and CI runs. Set FUZZTIME (a duration, or a number of inputs as
# 100000x) to fuzz longer, AUDITRAIL_E2E_FULL=1 to run the end-to-end
# scenarios at full volume (longer outages), TEST_LOG_DIR to keep the
# logs somewhere else than .test-logs/.
#
# Every go test has a -timeout sized for a busy 2-core machine. The output
# of each step goes whole to a log file; the terminal shows the progress
# lines and, when a step fails, the last 300 lines of its log, panics and
# goroutine dumps included.
set -euo pipefail
cd "$(dirname "$0")/.."

logs=${TEST_LOG_DIR:-$PWD/.test-logs}
mkdir -p "$logs"
start=$SECONDS

# step NAME COMMAND... runs COMMAND with its whole output in
# $logs/NAME.log, printing go test's progress lines as they come.
step() {
  local name=$1 log=$logs/$1.log status=0
  shift
  echo "== $name ($((SECONDS - start)) s)"
  "$@" >"$log" 2>&1 &
  local pid=$!
  tail -n +1 -F --pid="$pid" "$log" 2>/dev/null | grep --line-buffered -E '^(--- |FAIL|ok |PASS$|panic:)' || true
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "== $name FAILED (exit $status); the last 300 lines of $log:"
    tail -n 300 "$log"
    exit "$status"
  fi
}

# MinIO and helm build in the background (the first time mostly a
# download) while the tests and their dependencies compile: go list
# -export compiles every package the test steps need, without linking,
# with the same flags, so the steps below find it in the build cache.
# go vet runs inside each go test (-vet=all), on the packages the race
# build already compiled, instead of compiling everything a second time.
echo "== tools in the background ($logs/tools.log)"
./scripts/tools.sh >"$logs/tools.log" 2>&1 &
tools=$!
step compile sh -c 'go list -race -export -deps -test ./... >/dev/null && cd e2e && go list -export -deps -test ./... >/dev/null && cd apiserver && go list -export -deps -test ./... >/dev/null'
echo "== tools ($((SECONDS - start)) s)"
if ! wait "$tools"; then
  echo "== tools FAILED; the last 300 lines of $logs/tools.log:"
  tail -n 300 "$logs/tools.log"
  exit 1
fi
# Tests that need MinIO fail rather than skip when it is missing.
export AUDITRAIL_REQUIRE_TOOLS=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

# Per package; the slowest (agent, sinks/s3 with MinIO) take 2-4 min on a
# busy 2-core machine under the race detector.
step unit go test -race -vet=all -count=1 -timeout 20m ./...
# The byte-at-a-time parser, which architectures without a vector masks64 use.
step purego go test -count=1 -timeout 10m -tags purego ./internal/auditjson

# By default each target runs a number of inputs, not a duration: a
# duration races Go 1.26's fuzzing coordinator at its deadline (go.dev/issue/75804)
# and fails with "context deadline exceeded" on a loaded machine. 5-10 s
# each on the 2-core CI machine.
fuzz() { step "fuzz-$1-$(basename "$3")" go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$2}" -timeout 15m "$3"; }
fuzz FuzzParse 200000x ./internal/auditjson
fuzz FuzzSkipContainer 300000x ./internal/auditjson
fuzz FuzzValid 300000x ./internal/ocsf
fuzz FuzzAppend 100000x ./internal/ocsf
fuzz FuzzDecode 300000x ./checkpoint
fuzz FuzzDecode 300000x ./journal
fuzz FuzzParse 300000x ./internal/slotfile
fuzz FuzzFramer 20000x ./agent/internal/framer
fuzz FuzzRecords 5000x ./agent

# kube-apiserver's writer, the real binary, SIGKILL, sink outages. The
# binary's build in TestMain counts against the timeout.
step e2e sh -c 'cd e2e && go test -vet=all -count=1 -v -timeout 60m ./...'
# The real kube-apiserver in process (k8s.io/kubernetes, its own module),
# the agent shipping its audit log. go test compiles kube-apiserver before
# the timeout starts; the run itself takes a few minutes.
step apiserver sh -c 'cd e2e/apiserver && go test -vet=all -count=1 -v -timeout 20m ./...'
echo "== all passed in $((SECONDS - start)) s; logs in $logs"
