#!/usr/bin/env bash
# Builds the auditrail binary: static, trimmed paths, version stamped.
# The Dockerfile, the end-to-end tests and the benchmark all build with
# this. Usage: scripts/build.sh OUTPUT [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build.sh OUTPUT [VERSION]}
version=${2:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/auditrail
