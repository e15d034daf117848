//! Fixtures for the containment tests: throwaway role users (removed by a Drop guard), a git
//! repository, a sandbox volume, the probe binary copied where a role can execute it, and a
//! runner that launches the probe under a role's containment with chosen layers switched off.

// Test support: a fixture step that fails must fail the test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use orchestrate_sandbox::exec::{prepare, ExecRequest, RoleSpec, SandboxSpec};
use orchestrate_sandbox::linux::launch::{self, Launcher};
use orchestrate_sandbox::plan::{Identity, Layer, Limits};
use orchestrate_sandbox::report::{LaunchReport, LayerStatus};

/// useradd/userdel take a lock on /etc/passwd: one at a time per test process.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Skips (with the reason on stderr) unless root.
pub fn skip_unless_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    eprintln!("SKIP: containment tests need root (they create role users and mounts)");
    true
}

/// System users created for one test; deleted on drop, even when the test fails.
pub struct Users(Vec<String>);

impl Users {
    pub fn create(tag: &str, roles: &[&str]) -> Users {
        let mut users = Users(Vec::new());
        let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        for role in roles {
            let name = format!("orchtj{}{tag}{role}", std::process::id());
            let mut ok = false;
            for _ in 0..20 {
                let st = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--user-group",
                        "--shell",
                        "/usr/sbin/nologin",
                        &name,
                    ])
                    .output()
                    .unwrap();
                if st.status.success() {
                    ok = true;
                    break;
                }
                // Another process holds the passwd lock: retry.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert!(ok, "useradd {name} failed");
            users.0.push(name);
        }
        users
    }

    pub fn name(&self, i: usize) -> &str {
        &self.0[i]
    }

    pub fn id(&self, i: usize) -> Identity {
        orchestrate_sandbox::exec::lookup_user(&self.0[i]).unwrap()
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        let _lock = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        for name in &self.0 {
            for _ in 0..20 {
                let st = Command::new("userdel").arg(name).output();
                if st.map(|o| o.status.success()).unwrap_or(false) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

/// A repository, a volume and the probe, under a 0755 temp dir in /var/tmp (not /tmp: the
/// role's private /tmp hides the host's).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub volume: PathBuf,
    pub bin: PathBuf,
    pub probe: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("orch-jail-test")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("README"), "base\n").unwrap();
        for args in [
            &["init", "-q"][..],
            &["add", "README"],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "base",
            ],
        ] {
            let st = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "git {args:?}");
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let probe = bin.join("sandbox-probe");
        std::fs::copy(env!("CARGO_BIN_EXE_sandbox-probe"), &probe).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let volume = dir.path().join("vol");
        Fixture {
            repo,
            volume,
            probe: probe.to_string_lossy().into_owned(),
            bin,
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// A role as in the repo's roles.yaml (codegen writes the repo, reviewers only read it).
pub fn role(name: &str, user: &str, writes_repo: bool) -> RoleSpec {
    RoleSpec {
        name: name.to_owned(),
        user: user.to_owned(),
        read: vec!["{repo}".to_owned()],
        write: if writes_repo {
            vec!["{repo}".to_owned(), "{scratch}".to_owned()]
        } else {
            vec![]
        },
        gateway: false,
        limits: Limits {
            cpu_seconds: 30,
            memory_mb: 256,
            pids: 32,
            wall_seconds: 20,
            nofile: 256,
            fsize_mb: 1,
        },
    }
}

/// The jail helper binary of this build.
pub fn launcher() -> Launcher {
    Launcher {
        program: PathBuf::from(env!("CARGO_BIN_EXE_orchestrate-jail")),
        args: vec![],
    }
}

/// The request `run` makes: every layer on except `off` (which needs and sets allow_weaker).
pub fn request(
    fx: &Fixture,
    role: &RoleSpec,
    id: Option<Identity>,
    off: &[Layer],
    argv: &[&str],
    pass_fds: Vec<i32>,
    extra_env: Vec<(String, String)>,
) -> ExecRequest {
    let enabled: BTreeSet<Layer> = Layer::ALL
        .into_iter()
        .filter(|l| !off.contains(l))
        .collect();
    ExecRequest {
        role: role.clone(),
        sandbox: SandboxSpec {
            require: Layer::ALL.into_iter().collect(),
            system_read: [
                "/usr",
                "/bin",
                "/sbin",
                "/lib",
                "/lib64",
                "/etc/alternatives",
                "/etc/ld.so.cache",
            ]
            .iter()
            .map(PathBuf::from)
            .chain([fx.bin.clone()])
            .collect(),
            env_allow: vec![],
        },
        repo: fx.repo.clone(),
        volume: fx.volume.clone(),
        toolchain: vec![],
        gateway_socket: None,
        // Switching a required layer off is only allowed in the weaker mode, and reported.
        allow_weaker: !off.is_empty(),
        identity: id,
        enabled,
        cgroup: orchestrate_sandbox::probe::host_cgroup(),
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        pass_fds,
        extra_env,
    }
}

pub struct Run {
    pub report: LaunchReport,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The probe's one-line answer.
    pub fn answer(&self) -> &str {
        assert!(
            self.report.setup_failure.is_none() && self.report.exec_failure.is_none(),
            "launch failed: {:?}\nstderr: {}",
            self.report,
            self.stderr
        );
        self.stdout.trim()
    }
}

/// Runs `argv` as `role` (identity `id`) with every layer on except `off`.
pub fn run(
    fx: &Fixture,
    role: &RoleSpec,
    id: Option<Identity>,
    off: &[Layer],
    argv: &[&str],
) -> Run {
    run_env(fx, role, id, off, argv, &[])
}

pub fn run_env(
    fx: &Fixture,
    role: &RoleSpec,
    id: Option<Identity>,
    off: &[Layer],
    argv: &[&str],
    env_allow: &[&str],
) -> Run {
    let mut req = request(fx, role, id, off, argv, vec![], vec![]);
    req.sandbox.env_allow = env_allow.iter().map(|s| (*s).to_owned()).collect();
    let (plan, _dropped) = prepare(&req).unwrap();
    let launcher = launcher();
    let (report, out, err) = launch::run_captured(&launcher, &plan).unwrap();
    for l in off {
        assert!(
            matches!(report.status(*l), Some(LayerStatus::Skipped { .. })),
            "layer {l:?} off must be reported as skipped: {report:?}"
        );
    }
    Run {
        report,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The probe run directly on the host, as the role's uid (the positive control).
pub fn outside(fx: &Fixture, id: Option<Identity>, args: &[&str]) -> String {
    let mut cmd = Command::new(&fx.probe);
    cmd.args(args);
    if let Some(id) = id {
        use std::os::unix::process::CommandExt;
        // std drops supplementary groups when root sets a uid.
        cmd.uid(id.uid).gid(id.gid);
    }
    // The probe was just copied: a child another test thread forked meanwhile can still hold the
    // copy's write fd until it execs (ETXTBSY). That window closes within milliseconds.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => break r.unwrap(),
        }
    };
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
