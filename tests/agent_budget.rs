//! `orchestrate resume RUN --reauthorize --raise-budget USD` and an `https` upstream, through the
//! binary, on a fully contained run of the textkit example.
//!
//! No Codex needed: codegen runs under the `command` driver with a small bash "agent" that asks
//! the model (the scripted server, through the relay and cost-control's gateway) for its next
//! step with curl and writes the FR-12 change only when the answer says `WRITE_FR12`. The scripted
//! usage puts the first iteration at 92 % of the run's 2 USD: the run pauses. A raise that does
//! not go above the ceiling is refused (exit 2) and changes nothing; a higher one lets the run go
//! on — to done, or to STOP_BUDGET_EXCEEDED at 100 % of the *new* ceiling. The https tests put a
//! TLS front with a private CA (rcgen) before the scripted server and name the CA as `ca_file` — or
//! not, and then the webpki roots refuse the certificate.
//!
//! Needs root, useradd, curl and every containment layer; skips with the reason otherwise.

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use agents::gateway::scripted::{Output as Item, ScriptedServer, Turn};
use agents::gateway::tls_front::TlsFront;
use support::{bin_dir, project_roles, text, Workspace};

const KEY: &str = "sk-test-UPSTREAM-budget-5d1e-never-in-a-role";

/// The "agent": one Chat Completions request per iteration through the relay; the FR-12 change
/// when the model says so. Its `max_tokens` makes each request's estimate 0.2 USD: after the
/// first iteration's 1.84 USD the gateway admits another only under a raised ceiling.
fn agent_script(repo: &Path) -> String {
    format!(
        r#"r=$(curl -sS --max-time 60 -X POST "{{base_url}}/chat/completions" -H "Authorization: Bearer $ORCHESTRATE_MODEL_TOKEN" -H 'content-type: application/json' -d '{{"model":"m","messages":[{{"role":"user","content":"next step"}}],"max_tokens":20000}}')
echo "agent: the model said: $r" >&2
case "$r" in
*WRITE_FR12*)
{}echo "agent: FR-12 written" >&2;;
esac
"#,
        support::fr12_writes(repo).join("\n") + "\n"
    )
}

/// roles.yaml: per-test users, codegen = the bash agent, the gateway to `base_url` at 10 USD per
/// million tokens, 2 USD per run.
fn roles_yaml(
    tag: &str,
    base_url: &str,
    key_file: &Path,
    ca_file: Option<&Path>,
    repo: &Path,
) -> String {
    let roles = std::fs::read_to_string(project_roles())
        .unwrap()
        .replace("user: orch-", &format!("user: ab{tag}-"))
        .replace("per_request_usd: 0.50", "per_request_usd: 2.0")
        .replace("per_run_usd: 5.00", "per_run_usd: 2.0");
    let script: String = agent_script(repo)
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    let command = format!(
        r#"    driver: command
    command:
      argv: [bash, "{{home}}/agent.sh"]
      token_env: ORCHESTRATE_MODEL_TOKEN
      files:
        - path: "{{home}}/agent.sh"
          content: |
{script}"#
    );
    let mut out = support::with_codegen_driver(&roles, &command);
    let ca = ca_file.map_or(String::new(), |c| format!("    ca_file: {}\n", c.display()));
    out.push_str(&format!(
        "\ngateway:\n  upstream:\n    base_url: {base_url}\n    api_key_file: {}\n{ca}  default_max_output_tokens: 64\n  prices:\n    m: {{ input_usd_per_mtok: 10.0, output_usd_per_mtok: 10.0 }}\n",
        key_file.display(),
    ));
    out
}

fn say(text: &str, input_tokens: u64) -> Turn {
    Turn {
        output: vec![Item::Message { text: text.into() }],
        input_tokens,
        output_tokens: 40,
        delta_bytes: 0,
    }
}

/// Iteration 1 costs 184 000 + 40 tokens at 10 USD/Mtok = 1.8404 USD, 92 % of 2 USD.
fn first_turn() -> Turn {
    say("Looked around; nothing changed yet.", 184_000)
}

/// The host-wide things `orchestrate setup` touches: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A textkit copy whose codegen is the bash agent, `orchestrate setup` done for its state
/// directory (per-test users, removed on drop), the scripted server behind the gateway.
struct Fixture {
    // Dropped first: `setup --remove` runs while the directory still exists.
    ws: Workspace,
    server: ScriptedServer,
    _front: Option<TlsFront>,
    _rt: tokio::runtime::Runtime,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// How the gateway reaches the scripted server.
enum Via {
    Http,
    /// A TLS front with a private CA named as `ca_file`.
    Https,
    /// The same front, no `ca_file`: the webpki roots must refuse its certificate.
    HttpsWithoutCa,
}

impl Fixture {
    /// `None` (after printing why) when this host cannot run the test.
    fn new(turns: Vec<Turn>, via: Via) -> Option<Self> {
        let bins = bin_dir();
        if let Some(why) = support::contained_skip_reason(&bins, &["curl"]) {
            eprintln!("SKIP: {why}");
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut ws = Workspace::new("orch-agent-budget", bins, KEY);
        let server = rt
            .block_on(ScriptedServer::start_tcp(turns, Duration::from_secs(900)))
            .unwrap();
        let (base_url, ca_file, front) = match via {
            Via::Http => (server.base_url().to_owned(), None, None),
            Via::Https | Via::HttpsWithoutCa => {
                let (ca_pem, front) = rt.block_on(tls_front(&server));
                let ca = ws.tmp.path().join("private-ca.pem");
                std::fs::write(&ca, ca_pem).unwrap();
                let url = format!("https://localhost:{}/v1", front.addr().port());
                let ca = matches!(via, Via::Https).then_some(ca);
                (url, ca, Some(front))
            }
        };
        let roles = roles_yaml(
            &support::user_tag(),
            &base_url,
            &ws.key_file,
            ca_file.as_deref(),
            &ws.repo,
        );
        ws.commit_and_set_up(&roles);
        Some(Self {
            ws,
            server,
            _front: front,
            _rt: rt,
            _serial: serial,
        })
    }

    fn orchestrate(&self, args: &[&str]) -> Output {
        self.ws.orchestrate(args)
    }

    fn run_id(&self) -> String {
        self.ws.newest_run_id()
    }

    fn run_dir(&self) -> PathBuf {
        self.ws.newest_run_dir()
    }

    fn status(&self) -> String {
        let st = self.orchestrate(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        runs[0]["status"].as_str().unwrap().to_owned()
    }

    /// The run's events as `orchestrate log --json` shows them.
    fn events(&self) -> Vec<serde_json::Value> {
        let out = self.orchestrate(&["log", &self.run_id(), "--json"]);
        assert!(out.status.success(), "log: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("log --json: {e}: {}", text(&out)));
        v.as_array()
            .cloned()
            .or_else(|| v["events"].as_array().cloned())
            .unwrap_or_else(|| panic!("log --json: no events: {v}"))
    }

    /// Output, role logs and requests seen, for messages.
    fn context(&self, out: &Output) -> String {
        self.ws.context(out, self.server.seen().len())
    }

    /// Start FR-12 and expect the pause at 92 %.
    fn start_and_pause(&self) -> String {
        let out = self.orchestrate(&["start", "FR-12"]);
        let ctx = self.context(&out);
        assert_eq!(out.status.code(), Some(4), "{ctx}");
        assert!(ctx.contains("PAUSED: cost_usd at 92 %"), "{ctx}");
        assert_eq!(self.server.seen().len(), 1, "{ctx}");
        assert_eq!(self.status(), "paused");
        self.run_id()
    }

    /// The body of cost-control's last signed ledger.
    fn ledger(&self) -> serde_json::Value {
        self.ws.newest_ledger()
    }

    fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.run_dir().join("manifest.json")).unwrap())
            .unwrap()
    }
}

/// A private CA's PEM and a front (certificate for `localhost`) forwarding to `server`.
async fn tls_front(server: &ScriptedServer) -> (String, TlsFront) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let target = server
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let front = TlsFront::start(vec![leaf.der().clone()], key, target)
        .await
        .unwrap();
    (ca_cert.pem(), front)
}

#[test]
fn a_paused_run_resumed_with_a_raised_budget_goes_on_to_done_and_the_raise_is_audited() {
    // Iteration 2 changes nothing (its budget stage measures 1.85 USD: 92 % of the old ceiling
    // would pause again, 46 % of the raised one goes on); iteration 3 writes FR-12.
    let turns = vec![
        first_turn(),
        say("Still thinking.", 1_000),
        say("WRITE_FR12", 1_000),
    ];
    let Some(f) = Fixture::new(turns, Via::Http) else {
        return;
    };
    let id = f.start_and_pause();
    let before = f.events().len();

    // Not above the ceiling in force: refused, nothing changed (status, events, requests).
    for low in ["2", "1.5", "0", "-3", "NaN"] {
        let out = f.orchestrate(&["resume", &id, "--reauthorize", "--raise-budget", low]);
        assert_eq!(out.status.code(), Some(2), "{low}: {}", text(&out));
        assert_eq!(f.status(), "paused", "{low}");
        assert_eq!(f.events().len(), before, "{low}: an event was written");
    }
    let low = f.orchestrate(&["resume", &id, "--reauthorize", "--raise-budget", "1.5"]);
    assert!(
        text(&low).contains("greater than the run's current cost ceiling of 2 USD"),
        "{}",
        text(&low)
    );
    // Above the month's limit (roles.yaml per_month_usd 200).
    let high = f.orchestrate(&["resume", &id, "--reauthorize", "--raise-budget", "500"]);
    assert_eq!(high.status.code(), Some(2), "{}", text(&high));
    assert!(text(&high).contains("per_month_usd"), "{}", text(&high));
    // Without --reauthorize the raise is refused as any resume is.
    let unauth = f.orchestrate(&["resume", &id, "--raise-budget", "4"]);
    assert_eq!(unauth.status.code(), Some(2), "{}", text(&unauth));
    assert!(
        text(&unauth).contains("needs --reauthorize"),
        "{}",
        text(&unauth)
    );
    assert_eq!(f.events().len(), before);
    assert_eq!(f.server.seen().len(), 1);

    // 4 USD: 1.84 is 46 % of it, below every threshold; the agent writes FR-12 and the run ends.
    let out = f.orchestrate(&["resume", &id, "--reauthorize", "--raise-budget", "4"]);
    let ctx = f.context(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(ctx.contains("cost ceiling raised from 2 to 4 USD"), "{ctx}");
    assert!(
        ctx.contains("run ceiling 4 USD"),
        "cost-control's gateway: {ctx}"
    );
    assert!(!ctx.contains("[budget] warning"), "{ctx}");
    assert!(!ctx.contains("[pause]"), "{ctx}");
    assert_eq!(f.server.seen().len(), 3, "{ctx}");
    let raised: Vec<serde_json::Value> = f
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "budget.raised")
        .collect();
    assert_eq!(raised.len(), 1, "{raised:?}");
    let body = &raised[0]["body"];
    assert_eq!(body["from_usd"], 2.0, "{body}");
    assert_eq!(body["to_usd"], 4.0, "{body}");
    assert_eq!(body["by"]["uid"], 0, "{body}");
    // The budget stage measured against the raised ceiling (cost-control's signed ledger).
    let ledger = f.ledger();
    assert_eq!(ledger["limit_usd"], 4.0, "{ledger}");
    assert_eq!(ledger["requests"], 3, "{ledger}");
    let m = f.manifest();
    assert_eq!(m["exit"], "done", "{m}");
    assert_eq!(m["cost"]["limit_usd"], 4.0, "{m}");
    assert_eq!(m["cost"]["raised"][0]["to_usd"], 4.0, "{m}");
    let verify = f.orchestrate(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn after_a_raise_the_run_stops_at_100_pct_of_the_new_ceiling() {
    // Iteration 2 books 70 000 + 40 tokens: 2.5408 USD in all, 102 % of 2.5 (127 % of the old 2).
    let Some(f) = Fixture::new(vec![first_turn(), say("Still looking.", 70_000)], Via::Http) else {
        return;
    };
    let id = f.start_and_pause();
    let out = f.orchestrate(&["resume", &id, "--reauthorize", "--raise-budget", "2.5"]);
    let ctx = f.context(&out);
    assert_eq!(out.status.code(), Some(4), "{ctx}");
    assert!(ctx.contains("STOP_BUDGET_EXCEEDED"), "{ctx}");
    assert!(ctx.contains("cost_usd at 102 % of its ceiling"), "{ctx}");
    assert_eq!(f.server.seen().len(), 2, "{ctx}");
    assert_eq!(f.status(), "stopped");
}

#[test]
fn the_gateway_reaches_an_https_upstream_with_a_private_ca_through_the_egress_bridge() {
    let Some(f) = Fixture::new(vec![say("WRITE_FR12", 1_000)], Via::Https) else {
        return;
    };
    let out = f.orchestrate(&["start", "FR-12"]);
    let ctx = f.context(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(ctx.contains("over TLS"), "{ctx}");
    let seen = f.server.seen();
    assert_eq!(seen.len(), 1, "{ctx}");
    assert!(
        seen[0]
            .headers
            .contains(&("authorization".into(), format!("Bearer {KEY}"))),
        "{:?}",
        seen[0].headers
    );
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|(k, v)| k == "host" && v.starts_with("localhost:")),
        "{:?}",
        seen[0].headers
    );
}

#[test]
fn without_its_ca_file_the_https_upstream_is_refused_by_the_webpki_roots_and_nothing_is_booked() {
    let Some(f) = Fixture::new(vec![say("WRITE_FR12", 1_000)], Via::HttpsWithoutCa) else {
        return;
    };
    let out = f.orchestrate(&["start", "FR-12"]);
    let ctx = f.context(&out);
    // No model answer, no change: the run ends without progress, never reaching the server.
    assert_eq!(out.status.code(), Some(4), "{ctx}");
    assert!(f.server.seen().is_empty(), "{ctx}");
    assert!(ctx.contains("STOP_NO_PROGRESS"), "{ctx}");
    assert!(
        ctx.contains("gateway: upstream request failed (nothing booked): TLS handshake with upstream localhost:"),
        "cost-control's log: {ctx}"
    );
    assert!(
        ctx.contains("invalid peer certificate: UnknownIssuer"),
        "{ctx}"
    );
    // The agent got the reason too (its 502), never the key.
    let codegen = std::fs::read_to_string(f.run_dir().join("logs/codegen.log")).unwrap();
    assert!(codegen.contains("upstream_unavailable"), "{codegen}");
    assert!(!codegen.contains(KEY), "{codegen}");
    let ledger = f.ledger();
    assert_eq!(ledger["spent_usd"], 0.0, "{ledger}");
    assert_eq!(ledger["tokens_in"], 0, "{ledger}");
}
