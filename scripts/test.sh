#!/usr/bin/env bash
# Runs every check and test of the project. This is the command the README
# names and CI runs. Set FUZZTIME (default 10s) to fuzz longer.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}

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

echo "== fuzz (${fuzztime} per target)"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$fuzztime" ./internal/auditjson
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$fuzztime" ./checkpoint
go test -run '^$' -fuzz '^FuzzFramer$' -fuzztime "$fuzztime" ./agent

echo "== end-to-end (kube-apiserver's writer, real binary, SIGKILL, sink outage)"
(cd e2e && go test -count=1 -v ./... 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s)')
