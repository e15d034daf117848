//! Builders for fixture inputs: unified diffs written the way `git diff` writes them, and
//! before/after trees on disk for the rules that compare whole manifests.

use orchestrate_agents::review::{self, Finding, ScanContext};
use std::path::Path;

fn lines(body: &str) -> Vec<&str> {
    body.lines().collect()
}

/// A diff creating `path` with `body`.
pub fn new_file(path: &str, body: &str) -> String {
    new_file_mode(path, body, "100644")
}

/// A diff creating `path` with `body` and `mode`.
pub fn new_file_mode(path: &str, body: &str, mode: &str) -> String {
    let l = lines(body);
    let mut d = format!(
        "diff --git a/{path} b/{path}\nnew file mode {mode}\nindex 0000000..1111111\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n",
        l.len()
    );
    for x in l {
        d.push('+');
        d.push_str(x);
        d.push('\n');
    }
    d
}

/// A diff deleting `path` whose content was `body`.
pub fn deleted(path: &str, body: &str) -> String {
    let l = lines(body);
    let mut d = format!(
        "diff --git a/{path} b/{path}\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/{path}\n+++ /dev/null\n@@ -1,{} +0,0 @@\n",
        l.len()
    );
    for x in l {
        d.push('-');
        d.push_str(x);
        d.push('\n');
    }
    d
}

/// A diff replacing every line of `path`'s `old` body with `new`.
pub fn modified(path: &str, old: &str, new: &str) -> String {
    let (o, n) = (lines(old), lines(new));
    let mut d = format!(
        "diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n@@ -1,{} +1,{} @@\n",
        o.len(),
        n.len()
    );
    for x in o {
        d.push('-');
        d.push_str(x);
        d.push('\n');
    }
    for x in n {
        d.push('+');
        d.push_str(x);
        d.push('\n');
    }
    d
}

/// A mode-only change.
pub fn mode_change(path: &str, old: &str, new: &str) -> String {
    format!("diff --git a/{path} b/{path}\nold mode {old}\nnew mode {new}\n")
}

/// A binary file added.
pub fn binary(path: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..3333333\nBinary files /dev/null and b/{path} differ\n"
    )
}

/// Scans a diff with the default context.
pub fn scan(diff: &str) -> Vec<Finding> {
    review::scan_diff(diff, &ScanContext::default())
}

/// Scans a diff with a context.
pub fn scan_with(diff: &str, ctx: ScanContext) -> Vec<Finding> {
    review::scan_diff(diff, &ctx)
}

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (p, body) in files {
        let path = root.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, body).unwrap();
    }
}

/// Writes the two trees and scans the change between them (manifests compared in full).
pub fn trees(before: &[(&str, &str)], after: &[(&str, &str)]) -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let (b, a) = (dir.path().join("before"), dir.path().join("after"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::create_dir_all(&a).unwrap();
    write_tree(&b, before);
    write_tree(&a, after);
    review::scan_trees(&b, &a, &ScanContext::default()).unwrap()
}

/// A Cargo.toml with one dependency line under `[dependencies]`.
pub fn cargo_toml(dep_line: &str) -> String {
    format!("[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{dep_line}\n")
}

/// The rule ids of some findings.
pub fn ids(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|x| x.rule_id.as_str()).collect()
}
