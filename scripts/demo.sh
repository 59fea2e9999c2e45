#!/usr/bin/env bash
# The README's demo command. Until the worker lands it runs the TTC guide's
# three-step flow (token, payment over mTLS, callback) against the local
# sandbox and prints the sandbox ledger; it never reaches the real hosts.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: the TTC guide's flow against the local sandbox (the queue-driven demo arrives with the worker)"
scripts/seed-flow.sh
