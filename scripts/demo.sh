#!/usr/bin/env bash
# The README's demo command: on a machine with only Go it starts an embedded
# NATS JetStream server, the TTC/CyberSource sandbox and a worker, publishes
# examples/demo-intents.jsonl (approved, declined, partial, authorize-only,
# invalid) and prints every outcome, the callbacks TTC received and the dead
# letters. It picks free ports and never calls the real TTC or CyberSource.
# Set REDIS_URL to use a real Redis instead of the in-process emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/demo "$@"
