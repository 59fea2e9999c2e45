#!/usr/bin/env bash
# The README's test command (make test). It does its own set-up on a fresh
# Debian machine that has only Go: it installs redis-server (the tests start
# their own on free ports; they never use a system one), curl (the seed's curl
# flow), promtool (Debian's prometheus package: the alerting rules' unit
# tests), chromium (the operator console's browser test) and a C compiler (go test -race needs cgo) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium) # the console's browser test (chromedp)
command -v promtool >/dev/null 2>&1 || need+=(prometheus) # promtool: the alerting rules' unit tests
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
PAYFLOW_REQUIRE_PROMTOOL=1 CGO_ENABLED=1 go test -race -count=1 -timeout 12m ./... "$@"

# The payment simulation's full CI set of seeds (under -race above it runs
# a reduced set): every invariant checked against the CyberSource model.
go test -count=1 -run '^TestSimulation$' -v ./internal/payment | grep -E '^(---|ok|FAIL)|simulation:|VIOLATION|scenario '

# Fuzz targets: a short run of each in CI (FUZZTIME=0 skips).
fuzztime=${FUZZTIME:-5s}
if [ "$fuzztime" != 0 ]; then
  grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
    pkg=./$(dirname "${f#./}")
    for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
      echo "fuzz $pkg $fn ($fuzztime)"
      # A finding fails at once (the input is written under testdata/fuzz);
      # a run that fails without one (the fuzzing engine's own hiccup: a
      # worker that did not answer in time) is shown and tried once more.
      log=$(mktemp)
      if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
        cat "$log" >&2
        if grep -q 'Failing input written to' "$log"; then rm -f "$log"; exit 1; fi
        echo "fuzz $pkg $fn: failed without a finding; once more" >&2
        go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
      fi
      rm -f "$log"
    done
  done
fi
# The static binaries, built as the Dockerfile builds them (CGO off,
# trimmed, version stamped).
scripts/build.sh
rm -rf bin

# The Kubernetes overlays render (kustomize, pinned, from the Go module proxy).
for overlay in overlays/uat overlays/production console; do
  go run sigs.k8s.io/kustomize/kustomize/v5@v5.6.0 build "deploy/$overlay" >/dev/null
done
echo "kustomize: deploy/overlays/uat, production and deploy/console render"

# The short chaos run: worker processes killed and restarted, the Redis
# primary (Sentinel, REDIS_MIN_REPLICAS=1) killed and failed over, a NATS
# node restarted, CyberSource and TTC faults; invariants checked.
if [ "${CHAOS:-short}" != off ]; then
  echo "chaos (short):"
  go run ./cmd/chaos -short
fi

# The README's demo, so that CI shows it running from a fresh clone.
echo "demo:"
scripts/demo.sh
echo "test: all passed"
