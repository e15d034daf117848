#!/usr/bin/env bash
# Orchestrator overhead of a whole run: `orchestrate start FR-12` on the textkit example with the
# test command replaced by `true`, so what is measured is the orchestrator (preflight, git
# plumbing, six role processes, frames, signatures, audit events, manifest), not cargo.
# Prints wall time and peak RSS (GNU time -v) for N runs; target: < 1 s and < 50 MB. As root the
# roles run fully contained (setup first, per-bench users ob-*, removed on exit).
#
#   bench/run-overhead.sh [N]       (default 5; PROFILE=debug to measure a debug build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-5}"
profile="${PROFILE:-release}"
target="${CARGO_TARGET_DIR:-$root/target}"
flags=(--manifest-path "$root/Cargo.toml" -p orchestrate -p orchestrate-agents -p orchestrate-gate --bins)
[ "$profile" = release ] && flags+=(--release)
cargo build "${flags[@]}" >&2
bin="$target/$profile"
export ORCHESTRATE_AGENT="$bin/orchestrate-agent"
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

# Not under /tmp: a role's private /tmp would hide the run's volume (no mount layer).
work="$(mktemp -d /var/tmp/orchestrate-bench.XXXXXX)"
chmod 755 "$work"
contained=no
[ "$(id -u)" = 0 ] && contained=yes
cleanup() {
    if [ "$contained" = yes ]; then
        "$bin/orchestrate" --repo "$repo" --state-dir "$work/state-1" setup --remove >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
repo="$work/textkit"
cp -R "$root/examples/textkit" "$repo"
rm -rf "$repo/target"
# The test-runner may run `true`; the FR's acceptance command stays covered by `cargo test`.
# Own user names (ob-planner, ...), so the bench never touches a real installation's users.
sed -e 's/commands: \["cargo test", "cargo llvm-cov", "cargo build"\]/commands: ["cargo test", "true"]/' \
    -e 's/user: orch-/user: ob-/' "$root/roles.yaml" > "$repo/roles.yaml"
grep -q '"true"' "$repo/roles.yaml"
# One iteration, as in the quick start: with `true` nothing can pass, so stop after one
# iteration without progress.
printf 'limits: { no_progress: 1 }\ntest_commands: ["true"]\n' > "$repo/frs/config.yaml"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -qm base

flags=()
if [ "$contained" = no ]; then
    echo "not root: roles run in the weaker mode (--allow-weaker)" >&2
    flags+=(--allow-weaker)
fi
printf '%-4s %-10s %-12s %s\n' run wall_s peak_rss_mb exit
for i in $(seq 1 "$n"); do
    state="$work/state-$i"
    if [ "$contained" = yes ]; then
        # Users, keys and the set-id gate for this state dir: not part of the measurement.
        "$bin/orchestrate" --repo "$repo" --state-dir "$state" setup >/dev/null
    fi
    set +e
    /usr/bin/time -v -o "$work/time-$i" "$bin/orchestrate" --repo "$repo" --state-dir "$state" \
        start FR-12 "${flags[@]}" >"$work/out-$i" 2>&1
    code=$?
    set -e
    wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time-$i" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')"
    rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time-$i")"
    printf '%-4s %-10s %-12s %s\n' "$i" "$wall" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" "$code"
done
echo "last run's output:"
sed 's/^/  /' "$work/out-$n"
