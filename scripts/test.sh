#!/usr/bin/env bash
# Runs every check and test of the project. This is the command the README
# names and CI runs. Set FUZZTIME (a duration, or a number of inputs as
# 100000x) to fuzz longer.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/tools.sh
# Tests that need MinIO fail rather than skip when it is missing.
export AUDITRAIL_REQUIRE_TOOLS=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...
(cd e2e && go vet ./...)

echo "== unit and integration tests (race detector)"
go test -race -count=1 ./...
# The byte-at-a-time parser, which architectures without a vector masks64 use.
go test -count=1 -tags purego ./internal/auditjson

# By default each target runs a number of inputs, not a duration: a
# duration races Go 1.26's fuzzing coordinator at its deadline (go.dev/issue/75804)
# and fails with "context deadline exceeded" on a loaded machine. 5-10 s
# each on the 2-core CI machine.
echo "== fuzz (${FUZZTIME:-a fixed number of inputs} per target)"
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$2}" "$3"; }
fuzz FuzzParse 200000x ./internal/auditjson
fuzz FuzzSkipContainer 300000x ./internal/auditjson
fuzz FuzzDecode 300000x ./checkpoint
fuzz FuzzFramer 20000x ./agent

echo "== end-to-end (kube-apiserver's writer, real binary, SIGKILL, sink outage)"
(cd e2e && go test -count=1 -v ./... 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s)')
