#!/usr/bin/env bash
# The README's test command (make test). It does its own set-up on a fresh
# Debian machine that has only Go: it installs redis-server (the tests start
# their own on free ports; they never use a system one), curl (the seed's curl
# flow) and a C compiler (go test -race needs cgo) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test: installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    echo "test: installing ${need[*]} with sudo"
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test: missing ${need[*]}: install them (Debian/Ubuntu: apt-get install ${need[*]}) and run again" >&2
    exit 1
  fi
fi

# A system redis-server package may start a service; the tests do not use it.
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
CGO_ENABLED=1 go test -race -count=1 -timeout 12m ./... "$@"

# Fuzz targets: a short run of each in CI (FUZZTIME=0 skips).
fuzztime=${FUZZTIME:-5s}
if [ "$fuzztime" != 0 ]; then
  grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
    pkg=./$(dirname "${f#./}")
    for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
      echo "fuzz $pkg $fn ($fuzztime)"
      go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >/dev/null
    done
  done
fi
# The static binaries, built as the Dockerfile builds them (CGO off,
# trimmed, version stamped).
scripts/build.sh
rm -rf bin

# The Kubernetes overlays render (kustomize, pinned, from the Go module proxy).
for overlay in uat production; do
  go run sigs.k8s.io/kustomize/kustomize/v5@v5.6.0 build "deploy/overlays/$overlay" >/dev/null
done
echo "kustomize: deploy/overlays/uat and production render"

# The short chaos run: worker processes killed and restarted, Redis and a
# NATS node restarted, CyberSource and TTC faults; invariants checked.
if [ "${CHAOS:-short}" != off ]; then
  echo "chaos (short):"
  go run ./cmd/chaos -short
fi

# The README's demo, so that CI shows it running from a fresh clone.
echo "demo:"
scripts/demo.sh
echo "test: all passed"
