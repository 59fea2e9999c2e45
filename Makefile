.PHONY: demo test build bench chaos chaos-short seed-flow sandbox

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

# The five performance figures (markdown table + bench.json).
bench:
	go run ./cmd/bench

# The full chaos run (10,000 intents) and the CI variant (1,000).
chaos:
	go run ./cmd/chaos
chaos-short:
	go run ./cmd/chaos -short

seed-flow:
	@scripts/seed-flow.sh

sandbox:
	go run ./cmd/sandbox
