use super::*;

// Captured from a real `cargo test --no-fail-fast` (cargo 1.95) on a crate with a unit-test binary,
// two integration-test binaries and doc tests; see tests/fixtures/libtest/.
const MIXED_OUT: &str = include_str!("../../tests/fixtures/libtest/mixed.stdout");
const MIXED_ERR: &str = include_str!("../../tests/fixtures/libtest/mixed.stderr");
const COMPILE_OUT: &str = include_str!("../../tests/fixtures/libtest/compile.stdout");
const COMPILE_ERR: &str = include_str!("../../tests/fixtures/libtest/compile.stderr");
const ABORT_OUT: &str = include_str!("../../tests/fixtures/libtest/abort.stdout");
const ABORT_ERR: &str = include_str!("../../tests/fixtures/libtest/abort.stderr");

fn case(suite: &str, name: &str, status: TestStatus) -> TestCase {
    TestCase {
        suite: suite.into(),
        name: name.into(),
        status,
    }
}

#[test]
fn mixed_run_reads_every_binary_and_doc_test_with_labels() {
    let p = parse(MIXED_OUT, MIXED_ERR);
    assert_eq!(p.build, Build::Ok);
    assert_eq!(p.anomalies, vec![]);
    let labels: Vec<&str> = p.suites.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            "unittests src/lib.rs",
            "tests/one.rs",
            "tests/two.rs",
            "doc-tests demo"
        ]
    );
    let cases: Vec<TestCase> = p.cases().cloned().collect();
    use TestStatus::*;
    assert_eq!(
        cases,
        vec![
            case("unittests src/lib.rs", "tests::adds", Passed),
            case("unittests src/lib.rs", "tests::prints", Passed),
            case("unittests src/lib.rs", "tests::slow_one", Ignored),
            case("unittests src/lib.rs", "tests::fails_here", Failed),
            case("tests/one.rs", "one_passes", Passed),
            case("tests/one.rs", "one_panics", Passed),
            case("tests/two.rs", "two_fails", Failed),
            case("doc-tests demo", "src/lib.rs - add (line 4)", Passed),
            case("doc-tests demo", "src/lib.rs - add (line 8)", Failed),
        ]
    );
    assert_eq!(
        (p.passed_count(), p.failed_count(), p.ignored_count()),
        (5, 3, 1)
    );
    assert!(!p.is_green());
}

#[test]
fn status_of_matches_last_path_segment_only() {
    let p = parse(MIXED_OUT, MIXED_ERR);
    assert_eq!(p.status_of("fails_here"), Some(TestStatus::Failed));
    assert_eq!(p.status_of("tests::adds"), Some(TestStatus::Passed));
    assert_eq!(p.status_of("one_panics"), Some(TestStatus::Passed));
    // `adds` is a segment; `dds` is not.
    assert_eq!(p.status_of("dds"), None);
    assert_eq!(p.status_of("slug_joins_words"), None);
}

#[test]
fn compile_error_is_a_failed_build_with_codes() {
    let p = parse(COMPILE_OUT, COMPILE_ERR);
    assert_eq!(p.suites, vec![]);
    let Build::Failed { errors } = &p.build else {
        panic!("expected a failed build, got {:?}", p.build);
    };
    let codes: Vec<Option<&str>> = errors.iter().map(|e| e.code.as_deref()).collect();
    assert_eq!(codes, vec![Some("E0425"), Some("E0308"), None]);
    assert_eq!(
        errors[0].message,
        "cannot find function `undefined_thing` in this scope"
    );
    assert!(errors[2].message.starts_with("could not compile `demo`"));
    assert!(!p.is_green());
}

#[test]
fn crashed_binary_leaves_an_unfinished_suite() {
    let p = parse(ABORT_OUT, ABORT_ERR);
    assert_eq!(p.build, Build::Ok);
    assert_eq!(p.suites.len(), 2);
    assert_eq!(p.suites[1].label, "tests/two.rs");
    assert_eq!(p.suites[1].summary, None);
    assert_eq!(
        p.anomalies,
        vec![Anomaly::Unfinished {
            suite: "tests/two.rs".into()
        }]
    );
    assert_eq!(p.failed_count(), 0);
    assert!(
        !p.is_green(),
        "a crashed test binary must not read as green"
    );
}

#[test]
fn output_replayed_under_failures_is_not_read_as_results() {
    let out = "\nrunning 1 test\ntest a ... FAILED\n\nfailures:\n\n---- a stdout ----\ntest a ... ok\ntest b ... ok\n\nfailures:\n    a\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
    let p = parse(out, "");
    assert_eq!(p.status_of("a"), Some(TestStatus::Failed));
    assert_eq!(p.status_of("b"), None);
    assert_eq!(p.anomalies, vec![]);
}

#[test]
fn forged_result_line_is_caught_as_duplicate_and_count_mismatch() {
    // A test that writes straight to fd 1 can print a fake line before its real result.
    let out = "\nrunning 1 test\ntest slug_joins_words ... ok\ntest slug_joins_words ... FAILED\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
    let p = parse(out, "     Running tests/slug.rs (x)\n");
    assert_eq!(p.status_of("slug_joins_words"), Some(TestStatus::Failed));
    assert_eq!(
        p.anomalies,
        vec![
            Anomaly::DuplicateName {
                suite: "tests/slug.rs".into(),
                name: "slug_joins_words".into()
            },
            Anomaly::CountMismatch {
                suite: "tests/slug.rs".into(),
                declared: 1,
                reported: 2
            },
            Anomaly::SummaryMismatch {
                suite: "tests/slug.rs".into()
            },
        ]
    );
}

#[test]
fn result_line_before_any_suite_is_flagged() {
    let out = "test fake ... ok\n\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
    let p = parse(out, "");
    assert_eq!(p.anomalies, vec![Anomaly::ResultOutsideSuite { line: 1 }]);
    assert_eq!(p.status_of("fake"), None);
}

#[test]
fn labels_fall_back_to_indices_when_stderr_disagrees() {
    let out = "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
    let p = parse(out, "");
    assert_eq!(p.suites[0].label, "#0");
    assert!(p.is_green());
}

#[test]
fn ignored_with_reason_and_odd_lines() {
    assert_eq!(
        parse_case("test x ... ignored, needs network"),
        Some(("x", TestStatus::Ignored))
    );
    assert_eq!(parse_case("test x ... "), None);
    assert_eq!(parse_case("test  ... ok"), None);
    assert_eq!(
        parse_case("test x has been running for over 60 seconds"),
        None
    );
    assert_eq!(parse_running("running many tests"), None);
    assert_eq!(parse_summary("test result: maybe. 1 passed"), None);
}

#[test]
fn cargo_error_without_compiler_code_and_no_suites_is_a_failed_build() {
    let err = "error: failed to write /r/Cargo.lock\n\nCaused by:\n  Read-only file system (os error 30)\n";
    let p = parse("", err);
    assert_eq!(
        p.build,
        Build::Failed {
            errors: vec![BuildError {
                code: None,
                message: "failed to write /r/Cargo.lock".into()
            }]
        }
    );
}
