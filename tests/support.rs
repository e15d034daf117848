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
