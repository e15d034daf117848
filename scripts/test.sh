#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing, then format check, clippy with
# warnings as errors, and every test in the workspace. Containment tests need root; without root they print
# `SKIP: <reason>` and the rest still runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build --bins"
# The end-to-end tests run the real binaries (orchestrate, orchestrate-agent, orchestrate-gate,
# orchestrate-jail) from this target directory.
cargo build --workspace --bins --locked

echo "== cargo test"
# One test thread per binary where tests fork, set rlimits or create users: those tests serialise themselves;
# the default parallelism is kept for everything else.
# --nocapture so that every `SKIP: <reason>` a test prints is visible in the log.
cargo test --workspace --locked --no-fail-fast -- --nocapture
