#!/usr/bin/env bash
# Model gateway benchmark: added latency of gateway + relay (p50/p99) vs the scripted server
# directly, and SSE streaming throughput. ROUNDS=<n> changes the request count (default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p orchestrate-agents --bench gateway "$@"
