use super::*;

use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn write(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn roles_text() -> String {
    std::fs::read_to_string(repo_file("roles.yaml")).unwrap()
}

#[test]
fn shipped_documents_load() {
    let roles = load_roles(&repo_file("roles.yaml")).unwrap();
    assert_eq!(roles.roles.len(), 6);
    let fr = load_fr(&repo_file("examples/textkit/frs/FR-12.yaml")).unwrap();
    assert_eq!(fr.id, "FR-12");
    let cfg = load_config_for(&repo_file("examples/textkit/frs/FR-12.yaml")).unwrap();
    assert_eq!(cfg.limits.unwrap().runtime_seconds, Some(600));
}

#[test]
fn misspelled_roles_field_names_line_column_and_path() {
    let text = roles_text().replacen("    limits:", "    limts:", 1);
    let line = text.lines().position(|l| l.contains("limts:")).unwrap() as u64 + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "roles.yaml", text.as_bytes());
    let err = load_roles(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.position().map(|p| p.line), Some(line), "{msg}");
    assert!(
        msg.starts_with(&format!("{}:{line}:", path.display())),
        "{msg}"
    );
    assert!(
        msg.contains(": roles.planner.limts: unknown field `limts`"),
        "{msg}"
    );
    assert!(!msg.contains("at line"), "location printed twice: {msg}");
}

#[test]
fn wrong_type_names_the_field() {
    let text = roles_text().replacen("cpu_seconds: ", "cpu_seconds: lots #", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "roles.yaml", text.as_bytes());
    let msg = load_roles(&path).unwrap_err().to_string();
    assert!(msg.contains("roles.planner.limits.cpu_seconds"), "{msg}");
}

#[test]
fn non_utf8_file_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "roles.yaml", b"version: 1\nsandbox: \xff\n");
    let err = load_roles(&path).unwrap_err();
    assert!(matches!(err, LoadError::NotUtf8 { .. }), "{err}");
    assert_eq!(
        err.position(),
        Some(Position {
            line: 2,
            column: 10
        })
    );
}

#[test]
fn fr_without_executable_acceptance_test_is_refused() {
    let text = std::fs::read_to_string(repo_file("examples/textkit/frs/FR-12.yaml")).unwrap();
    let text = text.replacen(
        "test: { command: \"cargo test\", name: \"slug_joins_words\" }",
        "test: { command: \"\", name: \"slug_joins_words\" }",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "FR-12.yaml", text.as_bytes());
    let err = load_fr(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Fr { .. }), "{msg}");
    assert!(msg.contains("acceptance"), "{msg}");
    assert!(err.position().is_some(), "{msg}");
}

#[test]
fn fr_with_no_acceptance_criteria_is_refused() {
    let text = std::fs::read_to_string(repo_file("examples/textkit/frs/FR-12.yaml")).unwrap();
    let start = text.find("acceptance:").unwrap();
    let end = text.find("security:").unwrap();
    let text = format!("{}acceptance: []\n{}", &text[..start], &text[end..]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "FR-12.yaml", text.as_bytes());
    let msg = load_fr(&path).unwrap_err().to_string();
    assert!(msg.contains("acceptance"), "{msg}");
}

#[test]
fn fr_id_must_match_file_name() {
    let text = std::fs::read_to_string(repo_file("examples/textkit/frs/FR-12.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "FR-13.yaml", text.as_bytes());
    let msg = load_fr(&path).unwrap_err().to_string();
    assert!(msg.contains("FR-13"), "{msg}");
}

#[test]
fn find_fr_searches_the_tree_and_skips_build_dirs() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a/b", "target", ".git", "node_modules"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("FR-7.yaml"), "x").unwrap();
    }
    assert_eq!(
        find_fr(dir.path(), "FR-7").unwrap(),
        dir.path().join("a/b/FR-7.yaml")
    );
    assert!(matches!(
        find_fr(dir.path(), "FR-8"),
        Err(LoadError::FrNotFound { .. })
    ));
    assert!(matches!(
        find_fr(dir.path(), "fr7"),
        Err(LoadError::BadFrId { .. })
    ));
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    std::fs::write(dir.path().join("c/FR-7.yaml"), "x").unwrap();
    assert!(matches!(
        find_fr(dir.path(), "FR-7"),
        Err(LoadError::FrAmbiguous { .. })
    ));
}

#[test]
fn missing_config_means_no_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let fr = write(&dir, "FR-1.yaml", b"");
    assert_eq!(
        load_config_for(&fr).unwrap(),
        crate::config::ThreadConfig::default()
    );
}

#[test]
fn unknown_config_field_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "config.yaml",
        b"limits:\n  runtime_seconds: 10\n  iteratons: 2\n",
    );
    let err = load_config(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.position().map(|p| p.line), Some(3), "{msg}");
    assert!(
        msg.contains("limits.iteratons") || msg.contains("iteratons"),
        "{msg}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        /// Any bytes: the loaders answer with a value or a located error, never a panic.
        #[test]
        fn loaders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            let r = write(&dir, "roles.yaml", &bytes);
            let _ = load_roles(&r);
            let f = write(&dir, "FR-1.yaml", &bytes);
            let _ = load_fr(&f);
            let c = write(&dir, "config.yaml", &bytes);
            let _ = load_config(&c);
        }

        /// Mutating one byte of the real roles.yaml never panics, and an error always names the file.
        #[test]
        fn mutated_roles_yaml_errors_name_the_file(pos in 0usize..4000, byte in any::<u8>()) {
            let mut text = roles_text().into_bytes();
            let i = pos % text.len();
            text[i] = byte;
            let dir = tempfile::tempdir().unwrap();
            let p = write(&dir, "roles.yaml", &text);
            if let Err(e) = load_roles(&p) {
                let msg = e.to_string();
                prop_assert!(msg.starts_with(&p.display().to_string()), "{}", msg);
            }
        }
    }
}
