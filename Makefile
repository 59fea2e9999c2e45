.PHONY: demo test build seed-flow sandbox

# The demo: the seed's flow (token, payment over mTLS, callback) against the
# local sandbox. It becomes the full queue-driven demo when the worker lands.
demo:
	@scripts/demo.sh

# Everything CI runs: set-up, gofmt, vet, tests with -race, short fuzzing.
test:
	@scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...

sandbox:
	go run ./cmd/sandbox
