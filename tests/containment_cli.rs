//! `orchestrate sandbox exec` and `orchestrate doctor` through the real binary (root): the
//! environment is scrubbed, exit statuses pass through, a missing layer refuses to start (exit 3,
//! naming the layer) unless --allow-weaker, a switched-off layer is never silent, and without root
//! the weaker mode runs with exactly the layers an unprivileged process can have.
//!
//! Needs the `orchestrate` binary of the same build (`cargo test --workspace` builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

static ACCOUNTS: Mutex<()> = Mutex::new(());

fn skip_unless_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    eprintln!("SKIP: needs root (creates a role user)");
    true
}

fn orchestrate() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("orchestrate");
    assert!(
        bin.is_file(),
        "{} missing: build it first (cargo build -p orchestrate)",
        bin.display()
    );
    bin
}

/// Role users, deleted on drop even when the test fails.
struct Users(Vec<String>);

/// A per-test prefix that replaces `orch-` in every user name of roles.yaml.
fn prefix(tag: &str) -> String {
    format!("otj{}{tag}-", std::process::id())
}

impl Users {
    fn create(prefix: &str, roles: &[&str]) -> Users {
        let mut users = Users(Vec::new());
        let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        for role in roles {
            let name = format!("{prefix}{role}");
            let ok = (0..20).any(|_| {
                let ok = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--user-group",
                        "--shell",
                        "/usr/sbin/nologin",
                        &name,
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
            users.0.push(name);
        }
        users
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        for name in &self.0 {
            for _ in 0..20 {
                if Command::new("userdel")
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
    }
}

/// The six role users of the project's roles.yaml (without the `orch-` prefix).
const ROLE_USERS: [&str; 6] = ["planner", "codegen", "review", "test", "cost", "progress"];

/// A git repo holding the project's roles.yaml with `orch-` in user names replaced by `prefix`, owned by
/// `owner` (so an unprivileged caller's git accepts it).
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(prefix: &str, owner: Option<u32>) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("orch-jail-cli")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let roles =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml"))
                .unwrap();
        // Every principal keeps its own user (validation insists), renamed to this test's prefix.
        let roles = roles.replace("user: orch-", &format!("user: {prefix}"));
        std::fs::write(repo.join("roles.yaml"), roles).unwrap();
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "x",
            ],
        ] {
            assert!(Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .status()
                .unwrap()
                .success());
        }
        if let Some(uid) = owner {
            assert!(Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{uid}"))
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        Repo { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn volume(&self) -> PathBuf {
        self.dir.path().join("vol")
    }
}

fn exec(repo: &Repo, extra: &[&str], argv: &[&str]) -> Output {
    Command::new(orchestrate())
        .arg("--repo")
        .arg(repo.path())
        .args(["sandbox", "exec", "--role", "codegen", "--volume"])
        .arg(repo.volume())
        .args(extra)
        .arg("--")
        .args(argv)
        .env("ORCH_TEST_SECRET", "s3cret-value")
        .output()
        .unwrap()
}

/// The launch ran its command to exit 0 (else: its stderr).
fn assert_ran(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn status_of(report: &serde_json::Value, layer: &str) -> String {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == layer)
        .map(|l| l["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn the_orchestrators_environment_does_not_reach_the_role() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("e");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    // Positive control: the variable is in the orchestrator's environment.
    let control = exec(
        &repo,
        &["--json", "--layer-off", "env", "--allow-weaker"],
        &["/usr/bin/env"],
    );
    assert!(String::from_utf8_lossy(&control.stdout).contains("ORCH_TEST_SECRET=s3cret-value"));
    assert_eq!(status_of(&report(&control), "env"), "skipped");
    assert!(
        String::from_utf8_lossy(&control.stderr).contains("switched off"),
        "a layer off is never silent"
    );
    let out = exec(&repo, &["--json"], &["/usr/bin/env"]);
    assert_ran(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("HOME=") && text.contains("TMPDIR=/tmp"),
        "{text}"
    );
    assert_eq!(status_of(&report(&out), "env"), "applied");
}

#[test]
fn exit_statuses_pass_through() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("x");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    assert_eq!(
        exec(&repo, &[], &["/bin/sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        exec(&repo, &[], &["/bin/sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
    assert_eq!(
        exec(&repo, &[], &["/no/such/command"]).status.code(),
        Some(127)
    );
}

#[test]
fn report_to_a_file_leaves_stdout_to_the_command() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("r");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    let file = repo.dir.path().join("report.json");
    let out = exec(
        &repo,
        &["--report", file.to_str().unwrap()],
        &["/bin/echo", "only this"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "only this\n");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(report["exit"]["code"], 0, "{report}");
    assert_eq!(status_of(&report, "mount"), "applied", "{report}");
}

#[test]
fn a_required_layer_that_cannot_be_applied_refuses_to_start() {
    if skip_unless_root() {
        return;
    }
    // No such OS user: identity cannot be applied.
    let repo = Repo::new(&prefix("n"), None);
    let out = exec(&repo, &[], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("identity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --allow-weaker runs it and says what is missing.
    let out = exec(&repo, &["--allow-weaker", "--json"], &["/bin/true"]);
    assert_ran(&out);
    assert_eq!(status_of(&report(&out), "identity"), "unavailable");
    assert_eq!(status_of(&report(&out), "seccomp"), "applied");
    // Switching a required layer off without --allow-weaker is refused too.
    let p = prefix("r");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    let out = exec(&repo, &["--layer-off", "seccomp"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seccomp"));
}

fn as_nobody(repo: &Repo, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(orchestrate())
        .arg("--repo")
        .arg(repo.path())
        .args(args)
        .env("HOME", repo.dir.path())
        .env_remove("ORCHESTRATE_STATE_DIR")
        .output()
        .unwrap()
}

#[test]
fn without_root_the_weaker_mode_keeps_namespaces_landlock_and_seccomp() {
    if skip_unless_root() {
        return;
    }
    let repo = Repo::new(&prefix("w"), Some(65534));
    // `sandbox exec --role codegen --volume <vol> EXTRA -- ARGV` as nobody.
    let exec_nobody = |extra: &[&str], argv: &[&str]| {
        let vol = repo.volume().to_string_lossy().into_owned();
        let mut args = vec!["sandbox", "exec", "--role", "codegen", "--volume", &vol];
        args.extend(extra);
        args.push("--");
        args.extend(argv);
        as_nobody(&repo, &args)
    };
    let out = exec_nobody(&[], &["/bin/true"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity: not root"));
    let out = exec_nobody(&["--allow-weaker", "--json"], &["/usr/bin/id", "-u"]);
    assert_ran(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("65534\n"));
    let r = report(&out);
    for layer in [
        "mount", "pid", "ipc", "uts", "network", "landlock", "seccomp", "rlimits", "env",
    ] {
        assert_eq!(status_of(&r, layer), "applied", "{layer}: {r}");
    }
    assert_eq!(status_of(&r, "identity"), "unavailable");
    assert_eq!(status_of(&r, "cgroups"), "unavailable");
    // Again on the same volume: the marker the first launch's volatile overlay left (in a dir
    // the kernel made mode 000) is set aside for the second without any privilege, and pid 1
    // mounts the overlay itself (the helper, in a user namespace, cannot build one detached).
    let file = repo.path().join("again");
    let write = format!("echo x > {}", file.display());
    let again = exec_nobody(&["--allow-weaker"], &["/bin/sh", "-c", &write]);
    assert_ran(&again);
    assert!(repo.volume().join("upper/again").is_file());
}

fn doctor_rows(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn row<'a>(doc: &'a serde_json::Value, layer: &str) -> &'a serde_json::Value {
    doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == layer)
        .unwrap()
}

#[test]
fn doctor_tells_the_truth_as_root_and_without_root() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("d");
    let _users = Users::create(&p, &ROLE_USERS);
    let repo = Repo::new(&p, Some(65534));
    let out = Command::new(orchestrate())
        .arg("--repo")
        .arg(repo.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let doc = doctor_rows(&out);
    assert_eq!(doc["host"]["root"], true);
    assert_eq!(row(&doc, "identity")["available"], true);
    assert_eq!(
        row(&doc, "identity")["roles"].as_array().unwrap().len(),
        6,
        "{doc}"
    );
    assert_eq!(row(&doc, "cgroups")["available"], true, "{doc}");
    assert_eq!(doc["mode"], "full", "{doc}");
    assert_eq!(out.status.code(), Some(0));
    // The directory volume's filesystem is named, and a journal-less ext4 (slow overlay
    // mounts) is warned about, never silently.
    let fs = &doc["volume"]["filesystem"];
    assert!(
        fs["fs_type"].as_str().is_some_and(|t| t != "unknown"),
        "{doc}"
    );
    assert_eq!(
        doc["volume"]["warning"].is_string(),
        fs["fs_type"] == "ext4" && fs["journal"] == false,
        "{doc}"
    );
    // A role whose user is missing is named.
    let missing = Repo::new(&prefix("m"), None);
    let out = Command::new(orchestrate())
        .arg("--repo")
        .arg(missing.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let doc = doctor_rows(&out);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(doc["mode"], "weaker");
    assert_eq!(
        row(&doc, "identity")["missing"].as_array().unwrap().len(),
        6
    );
    // Without root: namespaces, Landlock and seccomp yes; per-role users and cgroups no.
    let out = as_nobody(&repo, &["doctor", "--json"]);
    let doc = doctor_rows(&out);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(doc["host"]["root"], false);
    assert_eq!(doc["mode"], "weaker");
    for layer in [
        "mount", "pid", "ipc", "uts", "network", "landlock", "seccomp",
    ] {
        assert_eq!(row(&doc, layer)["available"], true, "{layer}: {doc}");
    }
    assert_eq!(row(&doc, "identity")["available"], false);
    assert!(row(&doc, "identity")["detail"]
        .as_str()
        .unwrap()
        .contains("not root"));
    assert_eq!(row(&doc, "cgroups")["available"], false);
}

/// Processes whose command line mentions `needle` (the early pid 1 is a fork of the CLI, so it
/// carries the CLI's arguments).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            found.push(format!("{}: {text}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn pid_1_forked_before_the_policy_loads_joins_the_cgroup_and_dies_with_a_bad_policy() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("y");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    // pid 1 was forked before roles.yaml was read; the command still runs as pid 2 of the
    // launch's pid namespace, inside the launch's memory and pids cgroups, with every layer.
    let out = exec(
        &repo,
        &["--json"],
        &["/bin/sh", "-c", "echo pid=$$; cat /proc/self/cgroup"],
    );
    assert_ran(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pid=2\n"), "{text}");
    for controller in ["memory", "pids"] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!(":{controller}:"))
                    && l.contains("/orchestrate/codegen-")),
            "not in the launch's {controller} cgroup: {text}"
        );
    }
    let r = report(&out);
    for l in r["layers"].as_array().unwrap() {
        assert_eq!(l["status"], "applied", "{l}");
    }
    // A policy that does not load: exit 2 naming the file, and the early pid 1 is gone with the
    // CLI (killed and reaped, not orphaned).
    std::fs::write(repo.path().join("roles.yaml"), "version: 1\nroles: [\n").unwrap();
    let marker = repo.volume().to_string_lossy().into_owned();
    let bad = exec(&repo, &[], &["/bin/sleep", "30"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("roles.yaml"));
    assert_eq!(processes_mentioning(&marker), Vec::<String>::new());
}

#[test]
fn the_front_runs_a_parsed_policy_alone_and_hands_a_new_one_to_the_engine() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("f");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    let state = repo.dir.path().join("state");
    // The front alone, without the engine next to it: it can only run from the parsed copy.
    let lone = repo.dir.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(orchestrate(), lone.join("orchestrate")).unwrap();
    let run = |bin: &Path| {
        Command::new(bin)
            .arg("--repo")
            .arg(repo.path())
            .arg("--state-dir")
            .arg(&state)
            .args(["sandbox", "exec", "--role", "codegen", "--volume"])
            .arg(repo.volume())
            .args(["--", "/bin/echo", "ran"])
            .output()
            .unwrap()
    };
    let miss = run(&lone.join("orchestrate"));
    assert_eq!(
        miss.status.code(),
        Some(5),
        "no parsed copy yet: the engine's job"
    );
    assert!(String::from_utf8_lossy(&miss.stderr).contains("orchestrate-engine"));
    let warm = run(&orchestrate());
    assert_ran(&warm);
    let hit = run(&lone.join("orchestrate"));
    assert_ran(&hit);
    assert_eq!(String::from_utf8_lossy(&hit.stdout), "ran\n");
    // Any edit is a new policy: parsed (and validated) by the engine first.
    let roles = repo.path().join("roles.yaml");
    let mut text = std::fs::read_to_string(&roles).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&roles, text).unwrap();
    assert_eq!(run(&lone.join("orchestrate")).status.code(), Some(5));
}

#[test]
fn launches_on_one_volume_reuse_one_work_dir_and_keep_little_behind() {
    if skip_unless_root() {
        return;
    }
    let p = prefix("s");
    let _users = Users::create(&p, &["codegen"]);
    let repo = Repo::new(&p, None);
    for _ in 0..12 {
        assert_ran(&exec(&repo, &[], &["/bin/true"]));
    }
    let names = |dir: PathBuf| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let work = repo.volume().join("work");
    assert_eq!(names(work.clone()), ["slot-0"], "one slot, reused");
    // Each launch sets the last one's marker aside; waiting helpers sweep them once 8 pile up.
    let aside = names(work.join("slot-0"))
        .iter()
        .filter(|n| n.starts_with(".trash-"))
        .count();
    assert!(aside < 8, "{aside} markers left after 12 launches");
}
