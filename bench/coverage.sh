#!/usr/bin/env bash
# Cost of the coverage step: `cargo llvm-cov` (what the test-runner runs to get lcov) against a plain
# `cargo test` on examples/textkit, both from a clean target directory (cold) and with the build cached (warm).
# Needs cargo-llvm-cov and llvm-tools-preview (scripts/setup.sh installs both).
# Usage: bench/coverage.sh [WORKDIR]   (RUNS=5)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/orchestrate-bench-coverage}"
RUNS="${RUNS:-5}"
EX="$ROOT/examples/textkit"
mkdir -p "$WORK"
cargo llvm-cov --version
T_TEST="$WORK/target-test" T_COV="$WORK/target-cov"
cd "$EX"
echo "== cold (target dir removed before each run)"
hyperfine --runs "$RUNS" --export-json "$WORK/cold.json" \
  --prepare "rm -rf $T_TEST $T_COV" \
  -n "cargo test" "CARGO_TARGET_DIR=$T_TEST cargo test --quiet" \
  -n "cargo llvm-cov --lcov" "CARGO_TARGET_DIR=$T_COV cargo llvm-cov --quiet --lcov --output-path $WORK/lcov.info"
echo "== warm (build cached; the tests and, for llvm-cov, profile merging and export run again)"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/warm.json" \
  -n "cargo test" "CARGO_TARGET_DIR=$T_TEST cargo test --quiet" \
  -n "cargo llvm-cov --lcov" "CARGO_TARGET_DIR=$T_COV cargo llvm-cov --quiet --lcov --output-path $WORK/lcov.info"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
print()
print("| step | cold mean (s) | warm mean (s) |")
print("| --- | --- | --- |")
cold = {r['command']: r for r in json.load(open(f"{w}/cold.json"))['results']}
warm = {r['command']: r for r in json.load(open(f"{w}/warm.json"))['results']}
for k in ("cargo test", "cargo llvm-cov --lcov"):
    print(f"| {k} | {cold[k]['mean']:.2f} ± {cold[k]['stddev'] or 0:.2f} | {warm[k]['mean']:.2f} ± {warm[k]['stddev'] or 0:.2f} |")
print()
print(f"overhead: cold x{cold['cargo llvm-cov --lcov']['mean'] / cold['cargo test']['mean']:.2f}, "
      f"warm x{warm['cargo llvm-cov --lcov']['mean'] / warm['cargo test']['mean']:.2f}")
lines = [l for l in open(f"{w}/lcov.info") if l.startswith('DA:')]
hit = sum(1 for l in lines if int(l.split(',')[1]) > 0)
print(f"lcov: {len(lines)} instrumented lines, {hit} covered ({100 * hit / max(1, len(lines)):.1f} %)")
PY
