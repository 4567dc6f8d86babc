#!/usr/bin/env bash
# Builds the servers the tests run against into .tools/bin (gitignored),
# once per pinned version: MinIO, a real S3-compatible server with Object
# Lock. The first build takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

bin=$PWD/.tools/bin
mkdir -p "$bin"
if [ "$(cat "$bin/minio.version" 2>/dev/null)" != "$MINIO_VERSION" ] || [ ! -x "$bin/minio" ]; then
  echo "== building MinIO $MINIO_VERSION into .tools/bin"
  GOBIN=$bin GOFLAGS=-trimpath go install "github.com/minio/minio@$MINIO_VERSION"
  echo "$MINIO_VERSION" > "$bin/minio.version"
fi
