use super::*;

use std::path::PathBuf;

use crate::load::load_fr;

fn shipped() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit/frs/FR-12.yaml"),
    )
    .unwrap()
}

fn broken(from: &str, to: &str) -> String {
    let text = shipped();
    assert!(
        text.contains(from),
        "fixture drifted: `{from}` not in FR-12.yaml"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("FR-12.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let err = load_fr(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn the_example_fr_is_valid() {
    let text = shipped();
    let fr: Fr = crate::load::parse_yaml(std::path::Path::new("FR-12.yaml"), &text).unwrap();
    fr.validate(Some("FR-12.yaml")).unwrap();
    assert_eq!(fr.acceptance.len(), 2);
    assert_eq!(fr.test_commands(), vec!["cargo test".to_owned()]);
}

#[test]
fn every_broken_field_is_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("id: FR-12", "id: FR12", "id: `FR12`"),
        (
            "name: \"slug_trims_dashes\"",
            "name: \"\"",
            "acceptance[1].test.name: empty",
        ),
        ("id: AC-2", "id: AC-1", "duplicate acceptance id `AC-1`"),
        (
            "outputs: [\"src/slug.rs\", \"src/lib.rs\", \"tests/slug.rs\"]",
            "outputs: [\"../secrets\"]",
            "paths.outputs[0]",
        ),
        (
            "outputs: [\"src/slug.rs\", \"src/lib.rs\", \"tests/slug.rs\"]",
            "outputs: []",
            "paths.outputs: empty",
        ),
        (
            "iterations: 4",
            "iterations: 0",
            "limits.iterations: 0 must be greater than 0",
        ),
        (
            "no_progress: 2",
            "no_progress: 9",
            "limits.no_progress: 9 is larger than limits.iterations",
        ),
        (
            "changed_lines_min_pct: 80",
            "changed_lines_min_pct: 180",
            "coverage.changed_lines_min_pct: 180 is above 100",
        ),
        (
            "changed_lines_min_pct: 80",
            "changed_lines_min_pct: 80\n  command: \"pytest --cov=.\"",
            "coverage.command: `pytest --cov=.` must contain `{lcov}`",
        ),
        ("risk: low", "risk: extreme", "risk"),
        (
            "owner: alice",
            "owner: alice\nreviewer: bob",
            "unknown field `reviewer`",
        ),
    ];
    for (from, to, want) in cases {
        let msg = broken(from, to);
        assert!(msg.contains(want), "{from:?} -> {to:?}: got {msg}");
    }
}

#[test]
fn fr_ids() {
    for ok in ["FR-1", "FR-12", "FR-1000"] {
        assert!(is_fr_id(ok), "{ok}");
    }
    for bad in ["FR-", "fr-12", "FR-1a", "FR--1", "FR-12.yaml", ""] {
        assert!(!is_fr_id(bad), "{bad}");
    }
}
