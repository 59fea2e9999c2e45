#!/usr/bin/env bash
# make mutation: mutation testing of the packages that guard money
# (docs/mutation.md). Not part of the test command: it takes far longer
# (see docs/mutation.md for the run times). Three parts:
#   1. the Lua mutant table (internal/idempotency TestLuaMutants, every
#      mutant; the test command runs a fast subset);
#   2. the gap mutants of issue 19 (internal/mutation TestGapMutants), each
#      applied to a copy of the module;
#   3. gremlins (github.com/go-gremlins/gremlins, from the module proxy) on
#      the Go code of each package, printing its efficacy.
# MUTATION_PACKAGES picks gremlins' packages (default: all six below);
# MUTATION_PARTS picks the parts (default "lua gaps gremlins").
# Needs redis-server on PATH, as the tests do (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

gremlins=github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
parts=${MUTATION_PARTS:-lua gaps gremlins}
packages=${MUTATION_PACKAGES:-internal/idempotency internal/consume internal/intent internal/cybs internal/tokencache internal/payment}
out=${MUTATION_OUT:-mutation-results}
mkdir -p "$out"
status=0

for part in $parts; do
  start=$SECONDS
  case $part in
  lua)
    echo "== Lua mutants (internal/idempotency TestLuaMutants)"
    PAYFLOW_MUTATION=all go test -count=1 -timeout 30m -run '^TestLuaMutants$' -v ./internal/idempotency >"$out/lua.txt" 2>&1 || status=1
    grep -E 'survived|did not complete|lua mutants:|^(ok|FAIL)' "$out/lua.txt" || true
    ;;
  gaps)
    echo "== gap mutants of issue 19 (internal/mutation TestGapMutants)"
    PAYFLOW_MUTATION=all go test -count=1 -timeout 30m -run '^TestGapMutants$' -v ./internal/mutation >"$out/gaps.txt" 2>&1 || status=1
    grep -E 'killed by|survived|did not run|gap mutants:|^(ok|FAIL)' "$out/gaps.txt" || true
    ;;
  gremlins)
    for p in $packages; do
      echo "== gremlins ./$p"
      # PAYFLOW_MUTATION=off: the Lua table does not run under each Go mutant;
      # PAYFLOW_SIM_SEEDS: the payment simulation runs one seed per scenario
      # per mutant (the CI set would take hours; docs/mutation.md);
      # PAYFLOW_STRESS_SCALE: internal/tokencache's stress tests run 0.4 of
      # their length (about 25 s instead of 47 s), with bounds that follow.
      PAYFLOW_MUTATION=off PAYFLOW_SIM_SEEDS=${PAYFLOW_SIM_SEEDS:-1} PAYFLOW_STRESS_SCALE=${PAYFLOW_STRESS_SCALE:-0.4} go run "$gremlins" unleash --workers 1 --timeout-coefficient 10 \
        -o "$out/gremlins-$(basename "$p").json" "./$p" >"$out/gremlins-$(basename "$p").txt" 2>&1 || status=1
      grep -E '^ *LIVED|^ *TIMED OUT|Killed:|Timed out:|Test efficacy|Mutator coverage|ERROR' "$out/gremlins-$(basename "$p").txt" || true
    done
    ;;
  *)
    echo "mutation: unknown part $part (lua, gaps, gremlins)" >&2
    exit 2
    ;;
  esac
  echo "   ($part: $((SECONDS - start)) s; full output in $out/)"
done
exit $status
