//! The gate as its own OS user, for real: `orchestrate setup` installs `<state>/bin/
//! orchestrate-gate` set-uid/set-gid to the gate's user, the orchestrator and the CLI run that
//! copy, and then
//! - a run promoted through it leaves `integration.git` owned by the gate's user: the
//!   orchestrator's user gets EACCES on `refs/heads/staging` (twin: the gate's user can; and with
//!   the set-id bit off the same promotion writes root-owned files);
//! - `orchestrate approve` run by a user who is not in `approvers` is refused and main stays;
//!   run by an approver it moves main, and the decision names that user (from the real uid);
//! - the caller's environment (PATH with a fake git, GIT_DIR, GIT_CONFIG_* with a hook) changes
//!   nothing the set-id gate does (controls: the same environment does take over a plain git).
//!
//! Needs root (creates users, runs commands as them) and the binaries of this target directory
//! (`cargo build --workspace --bins`); skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gate_fixture.rs"]
mod fixture;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use gate::decision::Verdict;
use protocol::artifact::{sign_artifact, KeyPair, Signer, Statement, Subject};
use protocol::canonical;
use serde_json::{json, Value};

/// Tests in this binary create accounts one at a time.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root (creates users, runs commands as them)");
        return true;
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        eprintln!("SKIP: no useradd on this system");
        return true;
    }
    false
}

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let b = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        b.is_file(),
        "{} missing: cargo build --workspace --bins first",
        b.display()
    );
    b
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn useradd(name: &str) {
    let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let ok = (0..20).any(|_| {
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .unwrap()
            .success();
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ok
    });
    assert!(ok, "useradd {name}");
}

fn userdel(name: &str) {
    if gate::identity::lookup_user(name).is_none() {
        return;
    }
    let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..20 {
        if Command::new("userdel")
            .arg("-f")
            .arg(name)
            .status()
            .is_ok_and(|s| s.success())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("groupdel")
        .arg(name)
        .stderr(std::process::Stdio::null())
        .status();
}

const SETUP_USERS: [&str; 8] = [
    "planner", "codegen", "review", "test", "cost", "progress", "gate", "run",
];

/// A state directory set up by `orchestrate setup` (users with this test's prefix), a seed
/// repository, and two extra users: an approver and an outsider. Everything is removed on drop
/// (`setup --remove --purge`, then userdel of whatever is left), also when the test fails.
struct Env {
    _tmp: tempfile::TempDir,
    prefix: String,
    repo: PathBuf,
    state: PathBuf,
    roles: PathBuf,
    extra: Vec<String>,
}

impl Env {
    fn new(tag: &str) -> Env {
        let prefix = format!("otg{}{tag}-", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix("orch-gate-setuid")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let repo = root.join("repo");
        let state = root.join("state");
        let mut env = Env {
            _tmp: tmp,
            prefix: prefix.clone(),
            repo: repo.clone(),
            state: state.clone(),
            roles: repo.join("roles.yaml"),
            extra: Vec::new(),
        };
        for who in ["appr", "out"] {
            let name = format!("{prefix}{who}");
            useradd(&name);
            env.extra.push(name);
        }
        std::fs::create_dir_all(repo.join("src")).unwrap();
        let roles = fixture::ROLES
            .replace("user: orch-", &format!("user: {prefix}"))
            .replace("approvers: [root]", &format!("approvers: [{prefix}appr]"));
        std::fs::write(&env.roles, roles).unwrap();
        std::fs::write(
            repo.join("src/lib.rs"),
            "pub fn add(a: u32, b: u32) -> u32 { a }\n",
        )
        .unwrap();
        fixture::git(&repo, &["init", "-q", "--initial-branch=main"]);
        fixture::git(&repo, &["add", "."]);
        fixture::git(&repo, &["commit", "-q", "-m", "base"]);
        // The lock is never held while `env` could be dropped (its Drop takes it).
        let o = {
            let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
            env.orchestrate(&["setup"])
        };
        assert_eq!(o.status.code(), Some(0), "setup: {}", text(&o));
        env
    }

    fn orchestrate(&self, args: &[&str]) -> Output {
        Command::new(bin("orchestrate"))
            .env("NO_COLOR", "1")
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .args(if args.first() == Some(&"setup") {
                vec!["--roles".to_owned(), self.roles.display().to_string()]
            } else {
                vec![]
            })
            .output()
            .unwrap()
    }

    fn user(&self, who: &str) -> (u32, u32) {
        gate::identity::lookup_user(&format!("{}{who}", self.prefix)).unwrap()
    }

    fn base(&self) -> String {
        fixture::git(&self.repo, &["rev-parse", "main"])
    }

    fn integration(&self) -> PathBuf {
        self.state.join("integration.git")
    }

    fn integration_ref(&self, r: &str) -> String {
        fixture::git(&self.integration(), &["rev-parse", r])
    }

    fn key(&self, label: &str) -> KeyPair {
        KeyPair::read_private(&self.state.join("keys").join(label).join("ed25519.key")).unwrap()
    }

    /// A good run (fixes `add` on its agent branch from `from`), left in the run directory as
    /// the run engine leaves it, signed with the keys setup made.
    fn good_run(&self, run: &str, from: &str) -> String {
        let repo = &self.repo;
        let branch = format!("agent/{}/{run}", fixture::FR);
        fixture::git(repo, &["checkout", "-q", "-B", &branch, from]);
        let body = format!("pub fn add(a: u32, b: u32) -> u32 {{ a + b }} // {run}\n");
        std::fs::write(repo.join("src/lib.rs"), body).unwrap();
        fixture::git(repo, &["add", "."]);
        let msg = format!("fix add\n\nplan_id=plan-{run} iteration=1");
        fixture::git(repo, &["commit", "-q", "-m", &msg]);
        let tip = fixture::git(repo, &["rev-parse", "HEAD"]);
        fixture::git(repo, &["checkout", "-q", "main"]);

        let dir = self.state.join("runs").join(run);
        let art = dir.join("artifacts");
        std::fs::create_dir_all(&art).unwrap();
        let plan = fixture::Fixture::plan(run);
        std::fs::write(
            dir.join("WORK_PLAN.json"),
            canonical::to_vec(&plan).unwrap(),
        )
        .unwrap();
        let bundle = dir.join("agent.bundle");
        fixture::git(
            repo,
            &[
                "bundle",
                "create",
                bundle.to_str().unwrap(),
                &format!("{from}..{branch}"),
            ],
        );
        let h = plan.hash().unwrap();
        let files: [(&str, &str, Signer, Value); 5] = [
            (
                "plan",
                "planner",
                Signer::Planner,
                serde_json::to_value(&plan).unwrap(),
            ),
            (
                "test_results",
                "test-runner",
                Signer::TestRunner,
                json!({"iteration": 1, "commit": tip,
                "commands": [{"command": "cargo test", "exit_code": 0, "duration_ms": 10,
                              "output_sha256": "00".repeat(32)}],
                "tests": [{"name": "adds", "command": "cargo test", "status": "passed"}],
                "changed_lines_coverage_pct": 100.0}),
            ),
            (
                "review",
                "security-review",
                Signer::SecurityReview,
                json!({"iteration": 1, "commit": tip, "findings": []}),
            ),
            (
                "progress",
                "progress-evaluator",
                Signer::ProgressEvaluator,
                json!({"iteration": 1, "progressed": true, "score": 1.0, "done": true,
                       "reason": "acceptance tests pass"}),
            ),
            (
                "ledger",
                "cost-control",
                Signer::CostControl,
                json!({"requests": 3, "tokens_in": 100, "tokens_out": 50, "spent_usd": 0.02,
                       "limit_usd": 5.0}),
            ),
        ];
        for (kind, label, signer, body) in files {
            let st = Statement::new(
                vec![Subject::commit(run, &tip)],
                run,
                signer,
                kind,
                &h,
                &body,
            )
            .unwrap();
            let bytes = canonical::to_vec(&sign_artifact(&self.key(label), &st).unwrap()).unwrap();
            std::fs::write(art.join(format!("{kind}.dsse.json")), bytes).unwrap();
        }
        tip
    }

    /// Seeds the integration repository and promotes `run` the way `orchestrate start` does:
    /// through gate::client, which picks the installed gate.
    fn promote(&self, run: &str) -> gate::client::GateReport {
        gate::client::init(&self.state, &self.repo, "main").unwrap();
        gate::client::promote(&self.state, run).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let o = {
            let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
            self.orchestrate(&["setup", "--remove", "--purge"])
        };
        if !o.status.success() {
            eprintln!("cleanup: setup --remove failed: {}", text(&o));
        }
        for u in SETUP_USERS {
            userdel(&format!("{}{u}", self.prefix));
        }
        for u in &self.extra {
            userdel(u);
        }
    }
}

/// In a forked child switched to (uid, gid) with no supplementary groups: `open(path, flags)`;
/// 0 on success or the errno. The child only makes async-signal-safe calls before `_exit`.
fn open_as(uid: u32, gid: u32, path: &Path, flags: i32) -> i32 {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the child only calls setgroups/setgid/setuid/open/close/_exit (async-signal-safe)
    // on memory allocated before the fork; the parent only waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: in the forked child; see above.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(255);
            }
            let fd = libc::open(c.as_ptr(), flags, 0o644 as libc::c_uint);
            if fd < 0 {
                libc::_exit(*libc::__errno_location());
            }
            libc::close(fd);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above; `status` is a live local.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child did not exit normally");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 255, "child could not switch to uid {uid}");
    code
}

/// Every path under `root` with its owner uid and mode.
fn walk(root: &Path) -> Vec<(PathBuf, u32, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.uid(), m.mode()));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn promote_through_the_installed_gate_leaves_the_repository_to_the_gate_user() {
    if skip() {
        return;
    }
    bin("orchestrate-gate");
    let env = Env::new("p");
    let (gate_uid, gate_gid) = env.user("gate");
    let (run_uid, run_gid) = env.user("run");

    // setup installed the gate: set-uid and set-gid to the gate's user, 6755.
    let installed = gate::client::installed(&env.state).expect("setup installed the gate");
    let m = std::fs::metadata(&installed).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (gate_uid, gate_gid, 0o6755)
    );

    let run = "FR-12-20261123T140000-a001";
    let base = env.base();
    let tip = env.good_run(run, &base);
    let report = env.promote(run);
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    assert_eq!(env.integration_ref("refs/heads/staging"), tip);
    assert_eq!(env.integration_ref("refs/heads/main"), base);

    // Every file of the repository is the gate's, writable by nobody else.
    let files = walk(&env.integration());
    assert!(files.len() > 20, "{files:?}");
    for (p, uid, mode) in &files {
        assert_eq!(*uid, gate_uid, "{} not the gate's", p.display());
        assert_eq!(mode & 0o022, 0, "{} is group/other-writable", p.display());
    }
    // So is the decision it wrote into the run directory.
    let decision = env
        .state
        .join("runs")
        .join(run)
        .join("artifacts/decision-1.dsse.json");
    assert_eq!(std::fs::metadata(&decision).unwrap().uid(), gate_uid);

    let staging = env.integration().join("refs/heads/staging");
    let lock = env.integration().join("refs/heads/staging.lock");
    let create = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    // Positive control: the gate's user can take the ref's lock and open the ref for writing.
    assert_eq!(open_as(gate_uid, gate_gid, &lock, create), 0);
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(open_as(gate_uid, gate_gid, &staging, libc::O_WRONLY), 0);
    // The orchestrator's user cannot.
    assert_eq!(
        open_as(run_uid, run_gid, &staging, libc::O_WRONLY),
        libc::EACCES
    );
    assert_eq!(open_as(run_uid, run_gid, &lock, create), libc::EACCES);
    let out = Command::new("git")
        .arg("-C")
        .arg(env.integration())
        .args([
            "-c",
            &format!("safe.directory={}", env.integration().display()),
        ])
        .args(["update-ref", "refs/heads/staging", &base])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .uid(run_uid)
        .gid(run_gid)
        .output()
        .unwrap();
    assert!(!out.status.success(), "orch-run moved staging");
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    assert_eq!(env.integration_ref("refs/heads/staging"), tip);

    // The receipt does not call the gate's identity into question.
    let receipt = gate::receipt::build(&gate::Gate::new(&env.state), run, None).unwrap();
    let all = receipt.uncertain.join("\n");
    assert!(!all.contains("not installed as its own user"), "{all}");
    assert!(!all.contains("owned by root"), "{all}");

    // Twin, the set-id layer off: without the set-uid bit the client runs the gate as its
    // caller (root here), and the next promotion writes root-owned files into the repository.
    std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(gate::client::installed(&env.state).is_none());
    let run2 = "FR-12-20261123T140001-a002";
    let tip2 = env.good_run(run2, &tip);
    assert_eq!(env.promote(run2).verdict, Verdict::Pass);
    assert_eq!(env.integration_ref("refs/heads/staging"), tip2);
    let root_owned = walk(&env.integration())
        .into_iter()
        .filter(|(_, uid, _)| *uid == 0)
        .count();
    assert!(
        root_owned > 0,
        "a gate run as root wrote no root-owned file"
    );
    assert_eq!(
        std::fs::metadata(&staging).unwrap().uid(),
        0,
        "staging rewritten by root"
    );
    let receipt = gate::receipt::build(&gate::Gate::new(&env.state), run2, None).unwrap();
    let all = receipt.uncertain.join("\n");
    assert!(all.contains("not installed as its own user"), "{all}");
}

/// `orchestrate --state-dir S approve RUN --json` run as (uid, gid) with no supplementary
/// groups and a clean environment.
fn approve_as(env: &Env, uid: u32, gid: u32, run: &str, extra: &[&str]) -> Output {
    Command::new(bin("orchestrate"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent")
        .current_dir("/")
        .arg("--state-dir")
        .arg(&env.state)
        .args(["approve", run, "--json"])
        .args(extra)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

#[test]
fn approve_by_an_outsider_is_refused_and_by_an_approver_moves_main() {
    if skip() {
        return;
    }
    bin("orchestrate-gate");
    let env = Env::new("a");
    let run = "FR-12-20261123T140000-b001";
    let base = env.base();
    let tip = env.good_run(run, &base);
    assert_eq!(env.promote(run).verdict, Verdict::Pass);

    let (out_uid, out_gid) = env.user("out");
    let o = approve_as(&env, out_uid, out_gid, run, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let outsider = format!("{}out", env.prefix);
    assert!(
        text(&o).contains(&format!(
            "uid {out_uid} ({outsider}) is not in roles.yaml approvers"
        )),
        "{}",
        text(&o)
    );
    assert_eq!(env.integration_ref("refs/heads/main"), base, "main moved");
    // Nor may the outsider drive the gate's orchestrator side (seed, promote): exit 2.
    let installed = gate::client::installed(&env.state).unwrap();
    for args in [
        vec!["promote", "--run", run],
        vec!["init", "--seed", "/", "--rev", "HEAD"],
    ] {
        let o = Command::new(&installed)
            .args(&args)
            .arg("--state")
            .arg(&env.state)
            .env_clear()
            .uid(out_uid)
            .gid(out_gid)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("may not"), "{}", text(&o));
    }

    // The approver's own clone, which --update-local fast-forwards from the gate's repository.
    let (appr_uid, appr_gid) = env.user("appr");
    let clone = env.state.parent().unwrap().join("clone");
    fixture::git(
        env.state.parent().unwrap(),
        &[
            "clone",
            "-q",
            env.repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let st = Command::new("chown")
        .args(["-R", &format!("{appr_uid}:{appr_gid}")])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(st.success());
    // Control: a plain fetch from the gate-owned repository fails for the approver (git does
    // not hand `-c safe.directory` on to upload-pack), which is why --update-local configures
    // the remote's upload-pack.
    let integration = env.integration();
    let o = Command::new("git")
        .arg("-C")
        .arg(&clone)
        .arg("-c")
        .arg(format!("safe.directory={}", integration.display()))
        .arg("fetch")
        .arg(&integration)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .uid(appr_uid)
        .gid(appr_gid)
        .output()
        .unwrap();
    assert!(!o.status.success(), "plain fetch worked: {}", text(&o));
    assert!(text(&o).contains("dubious ownership"), "{}", text(&o));
    let o = approve_as(
        &env,
        appr_uid,
        appr_gid,
        run,
        &["--update-local", "--repo", clone.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(env.integration_ref("refs/heads/main"), tip);
    assert_eq!(
        fixture::git(&clone, &["rev-parse", "main"]),
        tip,
        "clone's main"
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &report["outcomes"][0]["decision"];
    assert_eq!(d["verdict"], "pass", "{report}");
    assert_eq!(d["actor"]["user"], format!("{}appr", env.prefix));
    assert_eq!(d["actor"]["uid"], appr_uid);
    // The refused attempt is on record too, signed, under the outsider's name.
    let ds = gate::layout::StateDir::new(&env.state)
        .decisions(run)
        .unwrap();
    let refused = &ds[1].decision;
    assert_eq!(refused.verdict, Verdict::Fail);
    assert_eq!(
        refused.actor.as_ref().unwrap().user.as_deref(),
        Some(outsider.as_str())
    );
    assert_eq!(ds[2].decision.verdict, Verdict::Pass);

    // Neither approve could write the audit trail; the orchestrator's next gate command (here
    // the receipt, as root) appends both signed decisions, marked as recorded late.
    let audit = |kind: &str| {
        orchestrate::state::Store::open(&env.state)
            .unwrap()
            .run_events(run, 0)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.body)
            .collect::<Vec<_>>()
    };
    assert!(audit("gate.approve_main").is_empty());
    let o = env.orchestrate(&["receipt", run]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let late = audit("gate.approve_main");
    assert_eq!(late.len(), 2, "{late:?}");
    assert_eq!(late[0]["decision_sha256"], ds[1].sha256);
    assert_eq!(late[0]["verdict"], "fail");
    assert_eq!(late[1]["decision_sha256"], ds[2].sha256);
    assert_eq!(late[1]["recorded_late"], true);
    assert_eq!(late[1]["moved"]["to"], tip);
    // Idempotent: a second receipt records nothing more.
    env.orchestrate(&["receipt", run]);
    assert_eq!(audit("gate.approve_main").len(), 2);

    // setup --remove takes the set-id gate away with the gate's user; the state stays.
    let o = env.orchestrate(&["setup", "--remove"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!gate::client::installed_path(&env.state).exists());
    assert!(gate::identity::lookup_user(&format!("{}gate", env.prefix)).is_none());
    assert!(env.integration().join("HEAD").is_file());
}

#[test]
fn the_callers_environment_changes_nothing_in_the_set_id_gate() {
    if skip() {
        return;
    }
    bin("orchestrate-gate");
    let env = Env::new("e");
    let run = "FR-12-20261123T140000-c001";
    let base = env.base();
    let tip = env.good_run(run, &base);
    assert_eq!(env.promote(run).verdict, Verdict::Pass);
    let (uid, gid) = env.user("appr");

    // The traps, all world-readable and -executable, each leaves a marker when it runs.
    let trap = env.state.parent().unwrap().join("trap");
    let fakebin = trap.join("bin");
    let hooks = trap.join("hooks");
    let markers = trap.join("markers");
    for d in [&fakebin, &hooks, &markers] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (path, marker) in [
        (fakebin.join("git"), "fake-git"),
        (hooks.join("reference-transaction"), "hook"),
    ] {
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n/usr/bin/touch {}/{marker}\nexit 0\n",
                markers.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for d in [&trap, &fakebin, &hooks] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A decoy repository GIT_DIR points at, readable and writable by the caller.
    let decoy = trap.join("decoy.git");
    fixture::git(&trap, &["init", "-q", "--bare", decoy.to_str().unwrap()]);
    fixture::git(
        &decoy,
        &["fetch", "-q", env.repo.to_str().unwrap(), "main:main"],
    );
    Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(&decoy)
        .status()
        .unwrap();
    let evil = |c: &mut Command| {
        c.env_clear()
            .env("PATH", &fakebin)
            .env("GIT_DIR", &decoy)
            .env("GIT_EXEC_PATH", &fakebin)
            .env("GIT_CONFIG_COUNT", "2")
            .env("GIT_CONFIG_KEY_0", "core.hooksPath")
            .env("GIT_CONFIG_VALUE_0", &hooks)
            .env("GIT_CONFIG_KEY_1", "safe.directory")
            .env("GIT_CONFIG_VALUE_1", "*")
            .env("HOME", &trap)
            .uid(uid)
            .gid(gid)
            .current_dir("/");
    };
    let marker = |m: &str| markers.join(m).exists();

    // Controls: the same environment takes over an ordinary git run by the same user.
    let mut c = Command::new("git");
    evil(&mut c);
    c.arg("version").status().unwrap();
    assert!(
        marker("fake-git"),
        "control: PATH did not pick the fake git"
    );
    std::fs::remove_file(markers.join("fake-git")).unwrap();
    let mut c = Command::new("/usr/bin/git");
    evil(&mut c);
    let o = c
        .env("GIT_EXEC_PATH", "/usr/lib/git-core")
        .args(["update-ref", "refs/heads/control", &base])
        .output()
        .unwrap();
    assert!(o.status.success(), "control update-ref: {}", text(&o));
    assert!(
        marker("hook"),
        "control: GIT_CONFIG_* did not install the hook"
    );
    assert_eq!(
        fixture::git(&decoy, &["rev-parse", "refs/heads/control"]),
        base
    );
    std::fs::remove_file(markers.join("hook")).unwrap();

    // The set-id gate with that environment: approves into the real repository, runs no trap.
    let installed = gate::client::installed(&env.state).unwrap();
    let mut c = Command::new(&installed);
    evil(&mut c);
    let o = c
        .args(["approve", "--state"])
        .arg(&env.state)
        .args(["--run", run])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(env.integration_ref("refs/heads/main"), tip);
    assert!(!marker("fake-git"), "the gate ran the caller's git");
    assert!(!marker("hook"), "the gate ran the caller's hook");
    assert_eq!(
        fixture::git(&decoy, &["rev-parse", "main"]),
        base,
        "the decoy's main moved"
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["outcomes"][0]["decision"]["actor"]["user"],
        format!("{}appr", env.prefix)
    );

    // And a --state that is not canonical (a symlink to the real one) is refused outright.
    let link = trap.join("state-link");
    std::os::unix::fs::symlink(&env.state, &link).unwrap();
    let mut c = Command::new(&installed);
    evil(&mut c);
    let o = c
        .args(["receipt", "--state"])
        .arg(&link)
        .args(["--run", run])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not canonical"), "{}", text(&o));
}
