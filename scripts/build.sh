#!/usr/bin/env bash
# Builds the static binaries the Dockerfile builds, with the same flags:
# CGO off, trimmed paths, version stamped. Output in bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p bin
for cmd in worker publisher sandbox; do
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "bin/${cmd}" "./cmd/${cmd}"
done
echo "built bin/worker bin/publisher bin/sandbox (${version})"
