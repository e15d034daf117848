use super::*;

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("src")).unwrap();
    std::fs::write(d.path().join("src/lib.rs"), "//! lib\n\npub fn a() {}\n").unwrap();
    std::fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::create_dir_all(d.path().join(".git")).unwrap();
    std::fs::write(d.path().join(".git/HEAD"), "ref: x\n").unwrap();
    d
}

fn err_text(r: Result<Outcome, ToolError>) -> String {
    match r {
        Ok(o) => panic!("expected a refusal, got {o:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn paths_outside_the_work_tree_are_refused_before_any_file_is_touched() {
    let d = tree();
    let outside = d.path().parent().unwrap().join("llm-tools-escape.txt");
    let _ = std::fs::remove_file(&outside);
    let cases: &[(&str, &str)] = &[
        ("/etc/shadow", "absolute"),
        ("../../keys/planner/ed25519.key", "`..`"),
        ("src/../../llm-tools-escape.txt", "`..`"),
        (".git/hooks/pre-commit", "`.git`"),
        ("src/.git/config", "`.git`"),
        ("", "names no file"),
        (".", "names no file"),
        ("a\0b", "NUL"),
    ];
    for (path, why) in cases {
        for tool in [
            Tool::ReadFile {
                path: (*path).into(),
            },
            Tool::WriteFile {
                path: (*path).into(),
                content: "x".into(),
            },
        ] {
            let e = err_text(run(d.path(), &tool));
            assert!(e.contains(why), "{path}: {e}");
            assert!(e.contains("refused"), "{path}: {e}");
        }
    }
    let e = err_text(run(
        d.path(),
        &Tool::ListFiles {
            path: "../..".into(),
        },
    ));
    assert!(e.contains("`..`"), "{e}");
    assert!(!outside.exists());
    // The same tools work on clean paths (so the refusals above are the paths' doing).
    let ok = run(
        d.path(),
        &Tool::WriteFile {
            path: "./src/new.rs".into(),
            content: "x".into(),
        },
    )
    .unwrap();
    assert_eq!(ok.changed, vec!["./src/new.rs".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(d.path().join("src/new.rs")).unwrap(),
        "x"
    );
}

#[test]
fn list_read_write_on_the_tree() {
    let d = tree();
    let l = run(d.path(), &Tool::ListFiles { path: ".".into() }).unwrap();
    assert_eq!(
        l.text, "Cargo.toml\nsrc/\nsrc/lib.rs",
        "`.git` is not listed"
    );
    let r = run(
        d.path(),
        &Tool::ReadFile {
            path: "src/lib.rs".into(),
        },
    )
    .unwrap();
    assert_eq!(r.text, "//! lib\n\npub fn a() {}\n");
    let w = run(
        d.path(),
        &Tool::WriteFile {
            path: "tests/deep/t.rs".into(),
            content: "#[test]\nfn t() {}\n".into(),
        },
    )
    .unwrap();
    assert_eq!(w.changed, vec!["tests/deep/t.rs".to_owned()]);
    assert!(d.path().join("tests/deep/t.rs").is_file());
    // The kernel's answer comes back as the tool's error text.
    let e = err_text(run(
        d.path(),
        &Tool::ReadFile {
            path: "src/missing.rs".into(),
        },
    ));
    assert!(e.contains("os error 2"), "{e}");
}

#[test]
fn a_symlink_inside_the_tree_is_followed_and_left_to_the_kernel() {
    // The tool layer checks the path's text; what a link resolves to is the sandbox's business
    // (the end-to-end test shows the kernel's denial inside the jail).
    let d = tree();
    let secret = d
        .path()
        .parent()
        .unwrap()
        .join(format!("llm-tools-secret-{}", std::process::id()));
    std::fs::write(&secret, "outside\n").unwrap();
    std::os::unix::fs::symlink(&secret, d.path().join("link")).unwrap();
    let r = run(
        d.path(),
        &Tool::ReadFile {
            path: "link".into(),
        },
    )
    .unwrap();
    assert_eq!(r.text, "outside\n");
    std::fs::remove_file(&secret).unwrap();
}

#[test]
fn oversized_reads_and_writes_are_refused() {
    let d = tree();
    let big = vec![b'x'; usize::try_from(MAX_READ_BYTES).unwrap() + 1];
    std::fs::write(d.path().join("big.txt"), &big).unwrap();
    let e = err_text(run(
        d.path(),
        &Tool::ReadFile {
            path: "big.txt".into(),
        },
    ));
    assert!(e.contains("more than"), "{e}");
    let e = err_text(run(
        d.path(),
        &Tool::WriteFile {
            path: "w.txt".into(),
            content: "y".repeat(MAX_WRITE_BYTES + 1),
        },
    ));
    assert!(e.contains("more than"), "{e}");
    assert!(!d.path().join("w.txt").exists());
}

#[test]
fn a_multi_file_unified_diff_applies_and_a_bad_hunk_changes_nothing() {
    let d = tree();
    let patch = "diff --git a/src/lib.rs b/src/lib.rs\nindex 111..222 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,5 @@\n //! lib\n \n+mod slug;\n+\n pub fn a() {}\ndiff --git a/src/slug.rs b/src/slug.rs\nnew file mode 100644\n--- /dev/null\n+++ b/src/slug.rs\n@@ -0,0 +1 @@\n+pub fn slugify() {}\n--- a/Cargo.toml\n+++ /dev/null\n@@ -1 +0,0 @@\n-[package]\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": patch }).to_string(),
    )
    .unwrap();
    assert_eq!(
        tool.frame().1["files"],
        serde_json::json!(["src/lib.rs", "src/slug.rs", "Cargo.toml"])
    );
    let o = run(d.path(), &tool).unwrap();
    assert_eq!(o.changed, vec!["src/lib.rs", "src/slug.rs", "Cargo.toml"]);
    assert_eq!(
        std::fs::read_to_string(d.path().join("src/lib.rs")).unwrap(),
        "//! lib\n\nmod slug;\n\npub fn a() {}\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("src/slug.rs")).unwrap(),
        "pub fn slugify() {}\n"
    );
    assert!(!d.path().join("Cargo.toml").exists());

    // Second file's hunk does not match: the first file is not touched either.
    let bad = "--- a/src/slug.rs\n+++ b/src/slug.rs\n@@ -1 +1 @@\n-pub fn slugify() {}\n+pub fn slugify(s: &str) {}\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-//! not this line\n+//! x\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": bad }).to_string(),
    )
    .unwrap();
    let e = err_text(run(d.path(), &tool));
    assert!(e.contains("src/lib.rs") && e.contains("context"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("src/slug.rs")).unwrap(),
        "pub fn slugify() {}\n"
    );

    // A patch whose target leaves the tree is refused by the same confinement.
    let esc = "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-root\n+x\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": esc }).to_string(),
    )
    .unwrap();
    assert!(err_text(run(d.path(), &tool)).contains("`..`"));
    let abs = "--- /dev/null\n+++ /tmp/llm-escape\n@@ -0,0 +1 @@\n+x\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": abs }).to_string(),
    )
    .unwrap();
    assert!(err_text(run(d.path(), &tool)).contains("absolute"));
    assert!(!Path::new("/tmp/llm-escape").exists());
    // Not a diff at all.
    let tool = parse("apply_patch", r#"{"patch": "just words"}"#).unwrap();
    assert!(err_text(run(d.path(), &tool)).contains("no `--- a/path`"));
    // Creating a file that exists, editing one that does not.
    let dup = "--- /dev/null\n+++ b/src/lib.rs\n@@ -0,0 +1 @@\n+x\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": dup }).to_string(),
    )
    .unwrap();
    assert!(err_text(run(d.path(), &tool)).contains("already exists"));
    let gone = "--- a/src/gone.rs\n+++ b/src/gone.rs\n@@ -1 +1 @@\n-a\n+b\n";
    let tool = parse(
        "apply_patch",
        &serde_json::json!({ "patch": gone }).to_string(),
    )
    .unwrap();
    assert!(err_text(run(d.path(), &tool)).contains("does not exist"));
}

#[test]
fn tool_calls_parse_strictly() {
    assert_eq!(
        parse("read_file", r#"{"path": "src/lib.rs"}"#).unwrap(),
        Tool::ReadFile {
            path: "src/lib.rs".into()
        }
    );
    assert_eq!(parse("run_tests", "").unwrap(), Tool::RunTests);
    assert_eq!(parse("run_tests", "{}").unwrap(), Tool::RunTests);
    assert_eq!(
        parse("finish", r#"{"summary": "done"}"#).unwrap(),
        Tool::Finish {
            summary: "done".into()
        }
    );
    let e = parse("shell", r#"{"cmd": "cat /etc/shadow"}"#).unwrap_err();
    assert!(matches!(e, ToolError::Unknown { .. }), "{e}");
    assert!(e.to_string().contains("unknown tool `shell`"));
    let e = parse("read_file", r#"{"path": 5}"#).unwrap_err();
    assert!(e.to_string().starts_with("read_file: arguments"), "{e}");
    let e = parse("read_file", r#"{"path": "a", "mode": "rw"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `mode`"), "{e}");
    let e = parse("run_tests", r#"{"command": "rm -rf /"}"#).unwrap_err();
    assert!(
        e.to_string().contains("unknown field `command`"),
        "the model cannot choose the test command: {e}"
    );
    let e = parse("write_file", "not json").unwrap_err();
    assert!(matches!(e, ToolError::Arguments { .. }), "{e}");
}

#[test]
fn a_write_is_reported_to_the_orchestrator_by_size_and_hash_not_content() {
    let (name, args) = Tool::WriteFile {
        path: "src/a.rs".into(),
        content: "abc".into(),
    }
    .frame();
    assert_eq!(name, "write_file");
    assert_eq!(
        args,
        serde_json::json!({"path": "src/a.rs", "bytes": 3,
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})
    );
}

#[test]
fn the_tool_definitions_name_every_tool_once() {
    let defs = definitions();
    let names: Vec<&str> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_files",
            "read_file",
            "write_file",
            "apply_patch",
            "run_tests",
            "finish"
        ]
    );
}
