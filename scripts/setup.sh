#!/usr/bin/env bash
# Installs what orchestrate's build, tests and benchmarks need on a fresh Debian machine that already has the
# Rust toolchain. Idempotent: anything already present is left alone, and apt's index is refreshed only when a
# package is actually missing. Run as root (CI does); without root it only reports what is missing.
set -euo pipefail

APT_PACKAGES=(
  git           # the run engine and the gate drive git
  e2fsprogs     # mkfs.ext4 for the optional ext4 sandbox volume
  uidmap        # newuidmap/newgidmap for the unprivileged (weaker) mode
  bubblewrap    # only for the launch-cost comparison in bench/launch.sh
  hyperfine     # benchmarks
  jq            # benchmark post-processing
  python3       # benchmark post-processing
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (run as root to install): ${missing[*]}" >&2
  else
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: Debian packages present"
fi

# Rust components the suite uses.
if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then rustup component add clippy; fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rustfmt'; then rustup component add rustfmt; fi
# Coverage evidence (test-runner, bench/coverage.sh): llvm-tools-preview and cargo-llvm-cov (~90 s to build once).
if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then rustup component add llvm-tools-preview; fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  echo "setup: installing cargo-llvm-cov"
  cargo install --locked --quiet cargo-llvm-cov
fi
# Codex CLI for the `command` driver (npm @openai/codex; its native binary is an optional npm dependency).
# Installed only when `codex --version` fails; a machine without npm gets a message, not a failed setup.
if codex --version >/dev/null 2>&1; then
  echo "setup: codex present ($(codex --version 2>/dev/null | head -n1))"
elif ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found; skipping Codex CLI (install Node.js + npm, then: npm install -g @openai/codex)" >&2
elif [ "$(id -u)" -ne 0 ] && [ ! -w "$(npm prefix -g 2>/dev/null || echo /nonexistent)" ]; then
  echo "setup: Codex CLI missing (run as root, or: npm install -g @openai/codex)" >&2
else
  echo "setup: installing Codex CLI (npm @openai/codex)"
  npm install -g --no-fund --no-audit @openai/codex >/dev/null || echo "setup: npm install -g @openai/codex failed; the command driver's Codex tests will skip" >&2
fi
echo "setup: done"
