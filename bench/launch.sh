#!/usr/bin/env bash
# Launch latency of one contained role process, side by side in ONE hyperfine run:
#   1. orchestrate sandbox exec --role codegen -- /bin/true   (every layer: identity, mount, pid,
#      ipc, uts, network, Landlock, seccomp, rlimits, cgroups, env)
#   2. plain fork+exec of /bin/true                           (hyperfine -N: no shell)
#   3. bwrap --unshare-all --die-with-parent --ro-bind / / --tmpfs /tmp --proc /proc --dev /dev /bin/true
#   4. orchestrate sandbox exec --role planner -- /bin/true   (every layer; the repo read-only, so
#      no writable overlay to mount: what the overlay on the volume's disk costs codegen)
#   5. 1. again with its volume on a journaled ext4 image (what `sandbox.volume: {kind: ext4}`
#      gives a run), loop-mounted by this script: on a journal-less ext4 (this project's CI VM)
#      every overlay mount walks past the inodes earlier launches freed, see sandbox/src/volume_fs.rs
# hyperfine runs under SCHED_FIFO (chrt -f 50) when it can, so other work on a busy machine does not
# land in the figures; every command gets the same treatment. NO_CHRT=1 turns that off. The runs
# are split into ROUNDS rounds (default 5) with the command order rotated, so a drift in the
# host's speed lands on every command alike.
# PACE=S sleeps S seconds before every launch (hyperfine --prepare): launches at the rate of a
# real run instead of back to back (the journal-less ext4 cost above grows with the rate).
# Prints median and p95 of each; the raw figures go to bench/out/launch.json.
# Needs root (per-role users, cgroups, the loop mount). Idempotent: installs hyperfine,
# bubblewrap, jq and e2fsprogs only if missing, creates the role users orch-codegen and
# orch-planner only if missing (and then removes them again on exit), unmounts and deletes the
# journaled image on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-300}
out="$here/out"
mkdir -p "$out"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/launch.sh: run as root (the codegen role runs as its own OS user)" >&2
  exit 3
fi
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v jq >/dev/null || need+=(jq)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

(cd "$repo" && cargo build --release -q -p orchestrate)
bin="${CARGO_TARGET_DIR:-$repo/target}/release/orchestrate"

created_users=()
work=$(mktemp -d /var/tmp/orch-bench.XXXXXX)
jmnt="$work/journaled"
cleanup() {
  if mountpoint -q "$jmnt" 2>/dev/null; then umount "$jmnt"; fi
  rm -rf "$work"
  for u in "${created_users[@]}"; do userdel "$u" 2>/dev/null || true; groupdel "$u" 2>/dev/null || true; done
}
trap cleanup EXIT
for role in codegen planner; do
  user=$(awk "/^  $role:/{f=1} f && /user:/{print \$2; exit}" "$repo/roles.yaml")
  if ! getent passwd "$user" >/dev/null; then
    useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$user"
    created_users+=("$user")
  fi
done
chmod 755 "$work"
vol="$work/vol"
# The same volume layout on a journaled ext4 image (loop device detached by umount: autoclear).
truncate -s 1G "$work/journaled.img"
mkfs.ext4 -q -F "$work/journaled.img"
mkdir "$jmnt"
mount -o loop "$work/journaled.img" "$jmnt"
chmod 755 "$jmnt"
jvol="$jmnt/vol"
src=$(findmnt -n -o SOURCE -T "$work")
journal=$(cat "/sys/fs/ext4/$(basename "$src")/journal_task" 2>/dev/null || echo "?")
echo "default volume: $(findmnt -n -o FSTYPE -T "$work") on $src (ext4 journal_task: $journal; <none> = no journal)"
jail="$bin --repo $repo sandbox exec --role codegen --volume $vol -- /bin/true"
# The first launch materialises the run's base commit into the volume (once per run, as in a run).
$jail
# Every layer must be live, or the comparison is meaningless.
"$bin" --repo "$repo" sandbox exec --role codegen --volume "$vol" --json -- /bin/true | tail -1 \
  | jq -e '[.layers[] | select(.status != "applied")] | length == 0' >/dev/null \
  || { echo "bench/launch.sh: not every layer is live here; see orchestrate doctor" >&2; exit 3; }

rt=()
if [ -z "${NO_CHRT:-}" ] && chrt -f 50 true 2>/dev/null; then rt=(chrt -f 50); fi
planner="$bin --repo $repo sandbox exec --role planner --volume $vol -- /bin/true"
$planner
jjail="$bin --repo $repo sandbox exec --role codegen --volume $jvol -- /bin/true"
$jjail
# The host's speed drifts over tens of seconds on a shared VM, and hyperfine runs each command's
# runs back to back: so the runs are split into ROUNDS rounds (default 5), each running every
# command, with the order rotated from round to round; the figures pool every round's runs.
rounds=${ROUNDS:-5}
per=$(( (runs + rounds - 1) / rounds ))
names=("orchestrate sandbox exec (all layers)" "fork+exec /bin/true" "bwrap --unshare-all"
  "orchestrate sandbox exec --role planner (all layers, repo read-only)"
  "orchestrate sandbox exec (all layers, volume on journaled ext4)")
cmds=("$jail" "/bin/true"
  "bwrap --unshare-all --die-with-parent --ro-bind / / --tmpfs /tmp --proc /proc --dev /dev /bin/true"
  "$planner" "$jjail")
rm -f "$out"/launch-round-*.json
for r in $(seq 1 "$rounds"); do
  args=()
  for k in 0 1 2 3 4; do
    i=$(( (k + r - 1) % 5 ))
    args+=(-n "${names[$i]}" "${cmds[$i]}")
  done
  "${rt[@]}" hyperfine -N --style none --warmup 10 --runs "$per" ${PACE:+--prepare "sleep $PACE"} \
    --export-json "$out/launch-round-$r.json" "${args[@]}" >/dev/null
done
jq -s '{rounds: length, results: ([.[].results[]] | group_by(.command)
  | map({command: .[0].command, times: (map(.times) | add)}))}' "$out"/launch-round-*.json \
  > "$out/launch.json"
rm -f "$out"/launch-round-*.json

echo
echo "$rounds rounds, order rotated; runs pooled per command"
printf '| %-40s | %10s | %10s | %5s |\n' command "median ms" "p95 ms" runs
printf '| %-40s | %10s | %10s | %5s |\n' "---" "---" "---" "---"
jq -r '.results[] | (.times | sort) as $t | ($t | length) as $n
  | [.command, ($t[($n / 2 | floor)] * 1000 * 100 | round / 100), ($t[($n * 0.95 | floor)] * 1000 * 100 | round / 100), $n]
  | @tsv' "$out/launch.json" \
  | while IFS=$'\t' read -r name med p95 n; do printf '| %-40s | %10s | %10s | %5s |\n' "$name" "$med" "$p95" "$n"; done
