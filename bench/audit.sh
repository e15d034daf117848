#!/usr/bin/env bash
# Audit store throughput: single and batched appends, and `audit verify` over 1,000,000 events.
# Usage: bench/audit.sh [EVENTS]   (release build; prints a Markdown table, also saved in bench/out/)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
cargo bench --locked -p orchestrate --bench audit -- "${1:-1000000}" | tee bench/out/audit.md
