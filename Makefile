.PHONY: demo test build bench chaos chaos-short seed-flow sandbox mutation

# The demo: embedded JetStream, the sandbox and a worker; example intents
# published and every outcome printed. Needs only Go.
demo:
	@scripts/demo.sh

# Everything CI runs: set-up, gofmt, vet, tests with -race, short fuzzing,
# the short chaos run and the demo.
test:
	@scripts/test.sh

build:
	@scripts/build.sh

# The performance figures (a)-(h) in one markdown table with the core count,
# and docs/bench.json: see the README's "Performance".
bench:
	go run ./cmd/bench -json docs/bench.json

# The full chaos run (10,000 intents, two Redis failovers) and the CI variant
# (1,000, one failover).
chaos:
	go run ./cmd/chaos
chaos-short:
	go run ./cmd/chaos -short

seed-flow:
	@scripts/seed-flow.sh

sandbox:
	go run ./cmd/sandbox

# Mutation testing of the packages that guard money (docs/mutation.md):
# the Lua mutant table, the gap mutants of issue 19 and gremlins. Slow (see
# docs/mutation.md); not part of make test.
mutation:
	@scripts/mutation.sh
