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
# The end-to-end tests run the real binaries (orchestrate and the orchestrate-engine it execs,
# orchestrate-agent, orchestrate-gate, orchestrate-jail) from this target directory.
cargo build --workspace --bins --locked

# What exists before the tests, so that only what they add counts as left behind.
snapshot() {
    getent passwd | cut -d: -f1 | grep -E '^(orch|orchestrate)[-_]' || true
    grep -E ' (overlay|tmpfs|ext4) .*(orchestr|sandbox|volume)' /proc/mounts | cut -d' ' -f2 || true
    losetup -a -O NAME,BACK-FILE --noheadings 2>/dev/null || true
}
before=$(snapshot | sort)

echo "== cargo test"
# One test thread per binary where tests fork, set rlimits or create users: those tests serialise themselves;
# the default parallelism is kept for everything else.
# --nocapture so that every `SKIP: <reason>` a test prints is visible in the log.
status=0
cargo test --workspace --locked --no-fail-fast -- --nocapture || status=$?

echo "== what the tests left behind"
# Tests must clean up even when they fail: users, mounts, loop devices, /dev/null itself.
left=$(comm -13 <(echo "$before") <(snapshot | sort) | sed '/^$/d')
if [ ! -c /dev/null ]; then left="$left
/dev/null is no longer a character device"; fi
if [ -n "$left" ]; then
    echo "FAIL: left behind:"
    echo "$left"
    [ "$status" = 0 ] && status=1
else
    echo "nothing"
fi
exit "$status"
