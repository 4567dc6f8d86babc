#!/usr/bin/env bash
# Builds the tools the tests need into .tools/bin (gitignored), once per
# pinned version: MinIO, a real S3-compatible server with Object Lock, and
# Helm, to lint and render the chart. The first build takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
HELM_VERSION=v3.22.0

bin=$PWD/.tools/bin
mkdir -p "$bin"
# tool NAME PACKAGE VERSION builds PACKAGE@VERSION as .tools/bin/NAME.
tool() {
  if [ "$(cat "$bin/$1.version" 2>/dev/null)" != "$3" ] || [ ! -x "$bin/$1" ]; then
    echo "== building $1 $3 into .tools/bin"
    GOBIN=$bin GOFLAGS=-trimpath go install "$2@$3"
    echo "$3" > "$bin/$1.version"
  fi
}
tool minio github.com/minio/minio "$MINIO_VERSION"
tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
