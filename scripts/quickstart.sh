#!/usr/bin/env bash
# The README's main-job command: build orchestrate, copy examples/textkit into a fresh git
# repository, and run FR-12 end to end (codegen replays the RECORDED session
# examples/textkit/sessions/FR-12.json; no model is involved). Safe to run again: every run
# uses a new temporary directory.
#
#   scripts/quickstart.sh            # debug build (faster to compile)
#   PROFILE=release scripts/quickstart.sh
#   ORCHESTRATE_STATE_DIR=/some/dir scripts/quickstart.sh   # keep state there instead of a temp dir
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${PROFILE:-debug}"
target="${CARGO_TARGET_DIR:-$root/target}"
say() { printf '==> %s\n' "$*"; }

say "building orchestrate and orchestrate-agent ($profile)"
build_flags=(--manifest-path "$root/Cargo.toml" -p orchestrate -p orchestrate-agents -p orchestrate-sandbox -p orchestrate-gate --bins)
[ "$profile" = release ] && build_flags+=(--release)
cargo build "${build_flags[@]}"
bin="$target/$profile"
orchestrate="$bin/orchestrate"
export ORCHESTRATE_AGENT="$bin/orchestrate-agent"

# Not under /tmp: each role gets a private /tmp, which would hide a run volume kept there.
work="$(mktemp -d "${QUICKSTART_DIR:-/var/tmp}/orchestrate-quickstart.XXXXXX")"
chmod 755 "$work"
repo="$work/textkit"
say "copying examples/textkit into a new git repository at $repo"
cp -R "$root/examples/textkit" "$repo"
rm -rf "$repo/target"
# The policy lives in the repository, as `orchestrate init` would put it; it is a protected path,
# and the gate reads it from the integration repository's main.
cp "$root/roles.yaml" "$repo/roles.yaml"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=quickstart -c user.email=quickstart@localhost commit -qm "textkit: base for the quick start"

state="${ORCHESTRATE_STATE_DIR:-$work/state}"
export ORCHESTRATE_STATE_DIR="$state"
flags=()
if [ "$(id -u)" = 0 ]; then
    # One OS user per role (and the gate and the orchestrator), the state directory's owners and
    # modes, a key pair per principal: what makes every role run as itself in the sandbox.
    # Idempotent; `orchestrate --state-dir "$state" setup --remove` undoes it.
    say "orchestrate setup (users, state directory, keys)"
    "$orchestrate" --repo "$repo" setup
else
    say "not root: no per-role users, so the run uses --allow-weaker (recorded in the manifest)"
    flags+=(--allow-weaker)
fi

say "orchestrate start FR-12 ${flags[*]:-}"
set +e
"$orchestrate" --repo "$repo" start FR-12 "${flags[@]}"
code=$?
if [ "$code" = 3 ] && [ "${#flags[@]}" = 0 ]; then
    say "containment unavailable on this host (exit 3, details above); rerunning with --allow-weaker, recorded as the weaker mode"
    "$orchestrate" --repo "$repo" start FR-12 --allow-weaker
    code=$?
fi
set -e

o="$orchestrate --state-dir $state"   # the commands printed below
run_id="$("$orchestrate" status --json | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' | head -n 1)"
echo
say "exit code $code"
if [ -n "$run_id" ]; then
    run_dir="$state/runs/$run_id"
    branch="agent/FR-12/$run_id"
    say "run         $run_id"
    say "repository  $repo"
    if git -C "$repo" rev-parse -q --verify "refs/heads/$branch" >/dev/null; then
        say "branch      $branch"
        git -C "$repo" log --format='    %h %s%n    %b' "main..$branch" | sed '/^    $/d'
    fi
    say "manifest    $run_dir/manifest.json"
    say "artifacts   $run_dir/artifacts"
    ls "$run_dir/artifacts" 2>/dev/null | sed 's/^/    /'
    staging="$(git -C "$state/integration.git" rev-parse -q --verify refs/heads/staging 2>/dev/null || true)"
    [ -n "$staging" ] && say "staging     $staging (moved by the gate: $state/integration.git)"
    say "receipt     $o receipt $run_id"
    say "review      $o review $run_id"
    say "status      $o status $run_id"
    say "audit       $o audit verify"
    say "approve     cd $repo && $o approve $run_id --update-local   (an approver from roles.yaml)"
    [ "$(id -u)" = 0 ] && say "undo setup  $o setup --remove   (removes the orch-* users again)"
fi
exit "$code"
