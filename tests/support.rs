//! Helpers shared by the end-to-end test binaries that drive the `orchestrate` binary on a copy of
//! the textkit example (included with `#[path = "support.rs"] mod support;`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this target's `orchestrate` (with the `orchestrate-engine` it execs)
/// and `orchestrate-agent` binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for b in ["orchestrate", "orchestrate-engine", "orchestrate-agent"] {
        assert!(
            dir.join(b).is_file(),
            "{} missing: run `cargo build --workspace --bins` first",
            dir.join(b).display()
        );
    }
    dir
}

/// examples/textkit.
pub fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit")
}

/// The project's roles.yaml.
pub fn project_roles() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml")
}

/// Copies a tree, leaving out `target/`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs git in `repo` and returns its trimmed stdout; a failure fails the test.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every containment layer, as `--layer-off` names them (a twin run switches them all off).
pub const LAYERS: [&str; 11] = [
    "identity", "mount", "pid", "ipc", "uts", "network", "landlock", "seccomp", "rlimits",
    "cgroups", "env",
];

/// Why a fully contained run cannot happen on this host (not root, a missing `tools`, a layer
/// `orchestrate doctor` finds unavailable), or `None`.
pub fn contained_skip_reason(bins: &Path, tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root: per-role users and every layer".into());
    }
    for tool in ["useradd"].iter().chain(tools) {
        if Command::new(tool).arg("--help").output().is_err() {
            return Some(format!("no {tool} on this system"));
        }
    }
    // Outside any repository: the host's layers, not a policy's.
    let out = Command::new(bins.join("orchestrate"))
        .args(["doctor", "--json"])
        .current_dir("/")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out)));
    let rows = doc["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), LAYERS.len(), "{doc}");
    let missing: Vec<String> = rows
        .iter()
        .filter(|r| r["available"] != true)
        .map(|r| format!("{}: {}", r["layer"], r["detail"]))
        .collect();
    (!missing.is_empty()).then(|| format!("layers unavailable here: {}", missing.join("; ")))
}

/// `roles` with codegen's `driver: replay` line replaced by `block` (a driver and its settings,
/// indented as a role's fields).
pub fn with_codegen_driver(roles: &str, block: &str) -> String {
    let mut out = String::new();
    let mut in_codegen = false;
    let mut replaced = false;
    for line in roles.lines() {
        if line.starts_with("  codegen:") {
            in_codegen = true;
        }
        if in_codegen && line.trim() == "driver: replay" {
            out.push_str(block);
            in_codegen = false;
            replaced = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(replaced, "no codegen replay driver to replace");
    out
}

/// `orchestrate --repo REPO --state-dir STATE ARGS` from `bins`, with that build's agent
/// binary and no colour.
pub fn orchestrate(bins: &Path, repo: &Path, state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bins.join("orchestrate"))
        .arg("--repo")
        .arg(repo)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("ORCHESTRATE_AGENT", bins.join("orchestrate-agent"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// A textkit copy for one fully contained run: its own state directory and upstream key file, in
/// a fresh directory under /var/tmp (a state directory under /tmp leaves the mount layer out).
/// [`Workspace::commit_and_set_up`] runs `orchestrate setup` for it (per-test users); dropping it
/// undoes that (`setup --remove`) while the directory still exists.
pub struct Workspace {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub key_file: PathBuf,
    pub bins: PathBuf,
    set_up: bool,
}

impl Workspace {
    /// textkit copied to `<tmp>/textkit`, `key` written to `<tmp>/upstream.key`.
    pub fn new(prefix: &str, bins: PathBuf, key: &str) -> Workspace {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/var/tmp")
            .unwrap();
        let ws = Workspace {
            repo: tmp.path().join("textkit"),
            state: tmp.path().join("state"),
            key_file: tmp.path().join("upstream.key"),
            tmp,
            bins,
            set_up: false,
        };
        copy_dir(&example(), &ws.repo);
        std::fs::write(&ws.key_file, format!("{key}\n")).unwrap();
        ws
    }

    /// Writes `roles_yaml`, commits the tree as `main` and runs `orchestrate setup`.
    pub fn commit_and_set_up(&mut self, roles_yaml: &str) {
        std::fs::write(self.repo.join("roles.yaml"), roles_yaml).unwrap();
        git(&self.repo, &["init", "-q", "-b", "main"]);
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-qm", "base"]);
        self.set_up = true;
        let out = self.orchestrate(&["setup"]);
        assert!(out.status.success(), "setup: {}", text(&out));
    }

    /// `orchestrate --repo R --state-dir S ARGS` with this build's agent binary, no colour.
    pub fn orchestrate(&self, args: &[&str]) -> std::process::Output {
        orchestrate(&self.bins, &self.repo, &self.state, args)
    }

    /// The newest run's id, per `orchestrate status --json`.
    pub fn newest_run_id(&self) -> String {
        let st = self.orchestrate(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&st.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&st)));
        runs[0]["run_id"].as_str().unwrap().to_owned()
    }

    /// The newest run's directory.
    pub fn newest_run_dir(&self) -> PathBuf {
        self.state.join("runs").join(self.newest_run_id())
    }

    /// The body of the newest run's last signed ledger (cost-control's DSSE envelope, decoded).
    pub fn newest_ledger(&self) -> serde_json::Value {
        use base64::Engine as _;
        let path = self.newest_run_dir().join("artifacts/ledger.dsse.json");
        let env: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(env["payload"].as_str().unwrap())
            .unwrap();
        let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        st["predicate"]["body"].clone()
    }

    /// A run's output, the newest run's codegen and cost-control logs and the number of model
    /// requests the scripted server saw, for failure messages.
    pub fn context(&self, out: &std::process::Output, requests_seen: usize) -> String {
        let dir = self.newest_run_dir();
        let read = |r: &str| std::fs::read_to_string(dir.join("logs").join(r)).unwrap_or_default();
        format!(
            "{}\n--- codegen.log ---\n{}\n--- cost-control.log ---\n{}\n--- {requests_seen} request(s) seen",
            text(out),
            read("codegen.log"),
            read("cost-control.log"),
        )
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !self.set_up {
            return;
        }
        let out = self.orchestrate(&["setup", "--remove"]);
        if !out.status.success() {
            eprintln!("setup --remove failed: {}", text(&out));
        }
    }
}

/// A tag for per-test user names, different between test processes run close together: the low
/// pid bits and a digit of the clock.
pub fn user_tag() -> String {
    format!(
        "{:03x}{}",
        std::process::id() & 0xfff,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 10
    )
}

/// The FR-12 change as the recorded session makes it (examples/textkit/sessions/FR-12.json,
/// iteration 1), one shell command per file written: `echo <base64> | base64 -d > <path>`, run
/// in a work tree whose files are those of `repo` (patches are applied to `repo`'s copy).
pub fn fr12_writes(repo: &Path) -> Vec<String> {
    use base64::Engine as _;
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example().join("sessions/FR-12.json")).unwrap())
            .unwrap();
    let b64 = |c: &str| base64::engine::general_purpose::STANDARD.encode(c);
    let mut cmds = Vec::new();
    for step in s["iterations"][0]["steps"].as_array().unwrap() {
        let path = step["path"].as_str().unwrap_or_default();
        let content = match step["op"].as_str().unwrap() {
            "write" => step["content"].as_str().unwrap().to_owned(),
            "patch" => std::fs::read_to_string(repo.join(path)).unwrap().replace(
                step["find"].as_str().unwrap(),
                step["replace"].as_str().unwrap(),
            ),
            _ => continue,
        };
        cmds.push(format!("echo {} | base64 -d > {path}", b64(&content)));
    }
    cmds
}
