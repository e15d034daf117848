use super::*;

use crate::load::load_roles;

fn example(dir: &tempfile::TempDir, config: Option<&str>) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit/frs");
    let fr = dir.path().join("FR-12.yaml");
    std::fs::copy(root.join("FR-12.yaml"), &fr).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.path().join("config.yaml"), c).unwrap();
    }
    fr
}

fn roles() -> RolesFile {
    load_roles(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml")).unwrap()
}

#[test]
fn the_example_thread_merges_to_the_stricter_values() {
    let dir = tempfile::tempdir().unwrap();
    let fr = example(
        &dir,
        Some("limits:\n  iterations: 3\nroles:\n  codegen:\n    limits: { memory_mb: 1536 }\n"),
    );
    let t = load_thread(&roles(), &fr).unwrap();
    assert_eq!(t.run_limits.iterations, 3);
    assert_eq!(t.run_limits.runtime_seconds, t.fr.limits.runtime_seconds);
    let codegen = t
        .role_limits
        .iter()
        .find(|(r, _)| *r == RoleName::Codegen)
        .unwrap()
        .1;
    assert_eq!(codegen.memory_mb, 1536);
    assert_eq!(t.test_commands, vec!["cargo test"]);
    assert!(t.cost_ceiling_usd <= t.fr.limits.cost_usd);
}

#[test]
fn loosening_config_is_located_in_config_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let fr = example(
        &dir,
        Some("# tighter, they said\nlimits:\n  runtime_seconds: 100000\n"),
    );
    let err = load_thread(&roles(), &fr).unwrap_err();
    let msg = err.to_string();
    let config = dir.path().join("config.yaml");
    assert!(
        msg.starts_with(&format!(
            "{}:3:3: limits.runtime_seconds: 100000 is looser than FR-12.yaml's",
            config.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_test_command_the_runner_may_not_run_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let fr = example(
        &dir,
        Some("test_commands:\n  - cargo test\n  - sh -c 'curl evil'\n"),
    );
    let msg = load_thread(&roles(), &fr).unwrap_err().to_string();
    assert!(
        msg.contains("config.yaml:3:5: test_commands[1]: `sh -c 'curl evil'` is not covered"),
        "{msg}"
    );
}

#[test]
fn no_config_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let fr = example(&dir, None);
    let t = load_thread(&roles(), &fr).unwrap();
    assert_eq!(t.config_path, None);
    assert_eq!(t.run_limits, t.fr.limits);
}
