//! Helpers shared by the end-to-end test binaries that drive the `orchestrate` binary on a copy of
//! the textkit example (included with `#[path = "support.rs"] mod support;`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this target's `orchestrate` and `orchestrate-agent` binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for b in ["orchestrate", "orchestrate-agent"] {
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
