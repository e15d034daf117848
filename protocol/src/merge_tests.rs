use super::*;

use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn roles() -> RolesFile {
    crate::load::load_roles(&repo_file("roles.yaml")).unwrap()
}

fn fr() -> Fr {
    crate::load::load_fr(&repo_file("examples/textkit/frs/FR-12.yaml")).unwrap()
}

fn config(yaml: &str) -> ThreadConfig {
    crate::load::parse_yaml(std::path::Path::new("config.yaml"), yaml).unwrap()
}

#[test]
fn no_config_means_the_base_limits() {
    let c = ThreadConfig::default();
    assert_eq!(effective_run_limits(&fr(), &c).unwrap(), fr().limits);
    let base = roles().roles[&RoleName::Codegen].limits;
    assert_eq!(
        effective_role_limits(&roles(), &c, RoleName::Codegen).unwrap(),
        base
    );
}

#[test]
fn config_tightens_run_and_role_limits() {
    let c = config(
        "limits: {iterations: 2, cost_usd: 0.5}\nroles:\n  codegen:\n    limits: {pids: 16}\n",
    );
    let run = effective_run_limits(&fr(), &c).unwrap();
    assert_eq!(run.iterations, 2);
    assert_eq!(run.cost_usd, 0.5);
    assert_eq!(run.runtime_seconds, fr().limits.runtime_seconds);
    let l = effective_role_limits(&roles(), &c, RoleName::Codegen).unwrap();
    assert_eq!(l.pids, 16);
    assert_eq!(
        l.memory_mb,
        roles().roles[&RoleName::Codegen].limits.memory_mb
    );
}

#[test]
fn config_cannot_loosen_a_run_limit() {
    let more = fr().limits.iterations + 1;
    let c = config(&format!("limits: {{iterations: {more}}}\n"));
    let err = effective_run_limits(&fr(), &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config.yaml: limits.iterations: {more} is looser than FR-12.yaml's limits.iterations ({}); config.yaml may only tighten limits",
            fr().limits.iterations
        )
    );
    let c = config("limits: {cost_usd: 1000}\n");
    assert!(matches!(
        effective_run_limits(&fr(), &c),
        Err(MergeError::Loosens { .. })
    ));
}

#[test]
fn config_cannot_loosen_a_role_limit() {
    let mem = roles().roles[&RoleName::TestRunner].limits.memory_mb * 2;
    let c = config(&format!(
        "roles:\n  test-runner:\n    limits: {{memory_mb: {mem}}}\n"
    ));
    let err = effective_role_limits(&roles(), &c, RoleName::TestRunner).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("roles.test-runner.limits.memory_mb"), "{msg}");
    assert!(msg.contains("may only tighten"), "{msg}");
}

#[test]
fn cost_ceiling_is_the_stricter_of_fr_and_budget() {
    let r = roles();
    let mut run = fr().limits;
    run.cost_usd = r.budgets.per_run_usd * 10.0;
    assert_eq!(effective_cost_ceiling_usd(&r, &run), r.budgets.per_run_usd);
    run.cost_usd = r.budgets.per_run_usd / 10.0;
    assert_eq!(
        effective_cost_ceiling_usd(&r, &run),
        r.budgets.per_run_usd / 10.0
    );
}

#[test]
fn test_commands_must_be_allowed_for_the_test_runner() {
    let c = config("test_commands: [\"cargo test --lib\"]\n");
    assert_eq!(
        effective_test_commands(&roles(), &fr(), &c).unwrap(),
        vec!["cargo test --lib"]
    );
    assert_eq!(
        effective_test_commands(&roles(), &fr(), &ThreadConfig::default()).unwrap(),
        vec!["cargo test"]
    );
    let c = config("test_commands: [\"curl https://example.com\"]\n");
    let err = effective_test_commands(&roles(), &fr(), &c).unwrap_err();
    assert!(
        matches!(err, MergeError::CommandNotAllowed { ref field, .. } if field == "test_commands[0]"),
        "{err}"
    );
}

#[test]
fn an_fr_coverage_command_must_be_allowed_for_the_test_runner() {
    let mut f = fr();
    f.coverage = Some(crate::fr::Coverage {
        changed_lines_min_pct: 80,
        command: Some("cargo llvm-cov --lcov --output-path {lcov}".into()),
    });
    assert!(effective_test_commands(&roles(), &f, &ThreadConfig::default()).is_ok());
    f.coverage = Some(crate::fr::Coverage {
        changed_lines_min_pct: 80,
        command: Some("sh -c cov>{lcov}".into()),
    });
    let err = effective_test_commands(&roles(), &f, &ThreadConfig::default()).unwrap_err();
    assert!(
        matches!(err, MergeError::CommandNotAllowed { ref field, .. } if field == "coverage.command"),
        "{err}"
    );
}

#[test]
fn config_may_raise_the_coverage_threshold_never_lower_it() {
    let base = fr().coverage.map_or(0, |c| c.changed_lines_min_pct);
    assert!(base > 0 && base < 100, "the example FR sets a threshold");
    let raised = effective_coverage(
        &fr(),
        &config(&format!(
            "coverage: {{changed_lines_min_pct: {}}}\n",
            base + 5
        )),
    )
    .unwrap();
    assert_eq!(raised.map(|c| c.changed_lines_min_pct), Some(base + 5));
    assert_eq!(
        effective_coverage(&fr(), &ThreadConfig::default())
            .unwrap()
            .map(|c| c.changed_lines_min_pct),
        Some(base)
    );
    let lower = effective_coverage(
        &fr(),
        &config(&format!(
            "coverage: {{changed_lines_min_pct: {}}}\n",
            base - 1
        )),
    );
    assert!(
        matches!(lower, Err(MergeError::Loosens { ref field, .. }) if field == "coverage.changed_lines_min_pct"),
        "{lower:?}"
    );
    let over = effective_coverage(&fr(), &config("coverage: {changed_lines_min_pct: 101}\n"));
    assert!(
        matches!(over, Err(MergeError::CoverageAbove100 { value: 101 })),
        "{over:?}"
    );
    // An FR without coverage gets the config's threshold.
    let mut bare = fr();
    bare.coverage = None;
    let set =
        effective_coverage(&bare, &config("coverage: {changed_lines_min_pct: 70}\n")).unwrap();
    assert_eq!(set.map(|c| c.changed_lines_min_pct), Some(70));
}
