use super::*;

fn lines(path: &str, a: u64, d: u64) -> FileLines {
    FileLines {
        path: path.into(),
        lines: Some((a, d)),
    }
}

fn sample(iteration: u32, tool_calls: u64, spent_usd: f64) -> Sample {
    Sample {
        iteration,
        tool_calls,
        spent_usd,
    }
}

fn obs<'a>(
    files: &'a [FileLines],
    calls: &'a [(String, String)],
    history: &'a [Sample],
) -> Observation<'a> {
    Observation {
        files,
        plan_targets: 3,
        no_new_dependencies: false,
        calls,
        history,
        current: sample(2, 5, 0.0),
    }
}

fn rules(hits: &[Anomaly]) -> Vec<(Rule, Option<StopCode>)> {
    hits.iter().map(|a| (a.rule, a.stop)).collect()
}

#[test]
fn numstat_reads_counts_and_binary_files() {
    let v = parse_numstat("12\t3\tsrc/a.rs\n-\t-\tlogo.png\n0\t40\tdir/with\ttab.rs\n");
    assert_eq!(v[0], lines("src/a.rs", 12, 3));
    assert_eq!(v[1].lines, None);
    assert_eq!(v[2].path, "dir/with\ttab.rs");
}

#[test]
fn an_ordinary_change_raises_nothing() {
    let files = [
        lines("src/slug.rs", 30, 0),
        lines("src/lib.rs", 4, 0),
        lines("tests/slug.rs", 12, 0),
    ];
    let calls = [
        ("read_file".to_string(), "{\"path\":\"a\"}".to_string()),
        ("read_file".to_string(), "{\"path\":\"b\"}".to_string()),
    ];
    let history = [sample(1, 4, 0.0)];
    assert_eq!(
        check(&obs(&files, &calls, &history), &Policy::default()),
        vec![]
    );
}

#[test]
fn file_types_outside_the_policy_stop() {
    let files = [
        lines("tools/helper.so", 0, 0),
        FileLines {
            path: "assets/blob.dat".into(),
            lines: None,
        },
        lines("src/zip.rs", 1, 0),
    ];
    let hits = check(&obs(&files, &[], &[]), &Policy::default());
    assert_eq!(
        rules(&hits),
        vec![
            (Rule::FileType, Some(StopCode::SecurityViolation)),
            (Rule::FileType, Some(StopCode::SecurityViolation)),
        ]
    );
    assert!(hits[0].detail.contains(".so files"), "{hits:?}");
    assert!(hits[1].detail.contains("binary"), "{hits:?}");
}

#[test]
fn diff_size_is_an_event_over_the_allowance_and_a_stop_far_over_it() {
    let p = Policy::default();
    // 3 targets x 400 = 1200 allowed; stop above 3600.
    let just_over = [lines("src/a.rs", 1000, 201)];
    let hits = check(&obs(&just_over, &[], &[]), &p);
    assert_eq!(rules(&hits), vec![(Rule::DiffSize, None)]);
    let at_allowance = [lines("src/a.rs", 1000, 200)];
    assert!(check(&obs(&at_allowance, &[], &[]), &p).is_empty());
    let far_over = [lines("src/a.rs", 3601, 0)];
    assert_eq!(
        rules(&check(&obs(&far_over, &[], &[]), &p)),
        vec![(Rule::DiffSize, Some(StopCode::ScopeExceeded))]
    );
}

#[test]
fn dependency_changes_stop_only_when_the_fr_forbids_them() {
    let files = [
        lines("Cargo.toml", 1, 0),
        lines("web/package-lock.json", 10, 2),
        lines("requirements-dev.txt", 1, 0),
        lines("src/cargo.rs", 1, 0),
    ];
    let mut o = obs(&files, &[], &[]);
    assert_eq!(
        rules(&check(&o, &Policy::default())),
        vec![(Rule::Dependency, None); 3]
    );
    o.no_new_dependencies = true;
    assert_eq!(
        rules(&check(&o, &Policy::default())),
        vec![(Rule::Dependency, Some(StopCode::SecurityViolation)); 3]
    );
    assert!(forbids_new_dependencies(&["No new dependencies".into()]));
    assert!(!forbids_new_dependencies(&["no network access".into()]));
}

#[test]
fn critical_paths_stop() {
    let files = [
        lines("build.rs", 5, 0),
        lines("crates/x/build.rs", 5, 0),
        lines(".cargo/config.toml", 2, 0),
        lines(".vscode/tasks.json", 2, 0),
        lines("src/build_rs.rs", 2, 0),
    ];
    let hits = check(&obs(&files, &[], &[]), &Policy::default());
    assert_eq!(
        rules(&hits),
        vec![(Rule::CriticalPath, Some(StopCode::SecurityViolation)); 4]
    );
}

#[test]
fn repeated_identical_calls_are_an_event_then_a_stop() {
    let call = |a: &str| ("run".to_string(), format!("{{\"command\":\"{a}\"}}"));
    let three: Vec<_> = (0..3)
        .map(|_| call("cargo test"))
        .chain([call("ls")])
        .collect();
    assert_eq!(
        rules(&check(&obs(&[], &three, &[]), &Policy::default())),
        vec![(Rule::RepeatedCall, None)]
    );
    let two: Vec<_> = (0..2).map(|_| call("cargo test")).collect();
    assert!(check(&obs(&[], &two, &[]), &Policy::default()).is_empty());
    let ten: Vec<_> = (0..10).map(|_| call("cargo test")).collect();
    assert_eq!(
        rules(&check(&obs(&[], &ten, &[]), &Policy::default())),
        vec![(Rule::RepeatedCall, Some(StopCode::NoProgress))]
    );
}

#[test]
fn a_jump_in_tool_calls_or_spend_is_an_event() {
    let history = [sample(1, 6, 0.10), sample(2, 8, 0.20)];
    let mut o = obs(&[], &[], &history);
    o.current = sample(3, 40, 0.30);
    assert_eq!(
        rules(&check(&o, &Policy::default())),
        vec![(Rule::CostJump, None)]
    );
    // Steady pace: no event.
    o.current = sample(3, 9, 0.31);
    assert!(check(&o, &Policy::default()).is_empty());
    // Spend: 0.10 per iteration, then 1.50 at once.
    o.current = sample(3, 7, 1.70);
    let hits = check(&o, &Policy::default());
    assert_eq!(rules(&hits), vec![(Rule::CostJump, None)]);
    assert!(hits[0].detail.contains("1.50 USD"), "{hits:?}");
    // The first iteration has nothing to compare with.
    let first = obs(&[], &[], &[]);
    assert!(check(&first, &Policy::default()).is_empty());
}

#[test]
fn roles_yaml_sets_thresholds_and_can_turn_a_stop_into_an_event() {
    let call = |a: &str| ("run".to_string(), format!("{{\"command\":\"{a}\"}}"));
    let four: Vec<_> = (0..4).map(|_| call("cargo test")).collect();
    let mut roles = protocol::roles::AnomalyPolicy::default();
    assert_eq!(
        rules(&check_with(&obs(&[], &four, &[]), &roles)),
        vec![(Rule::RepeatedCall, None)]
    );
    roles.repeat_stop = 4;
    assert_eq!(
        rules(&check_with(&obs(&[], &four, &[]), &roles)),
        vec![(Rule::RepeatedCall, Some(StopCode::NoProgress))]
    );
    roles.actions.insert(
        "repeated_call".into(),
        protocol::roles::AnomalyAction::Event,
    );
    assert_eq!(
        rules(&check_with(&obs(&[], &four, &[]), &roles)),
        vec![(Rule::RepeatedCall, None)]
    );
    // Every rule name is one roles.yaml knows.
    for r in [
        Rule::FileType,
        Rule::DiffSize,
        Rule::Dependency,
        Rule::CriticalPath,
        Rule::RepeatedCall,
        Rule::CostJump,
    ] {
        assert!(
            protocol::roles::ANOMALY_RULES
                .iter()
                .any(|(n, _)| *n == r.as_str()),
            "{r:?}"
        );
    }
}
