//! JUnit XML from libtest output.

use orchestrate_agents::coverage::junit;
use orchestrate_agents::roles::libtest;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/libtest/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn junit_counts_match_the_parsed_run_and_names_are_escaped() {
    let parsed = libtest::parse(&fixture("mixed.stdout"), &fixture("mixed.stderr"));
    let xml = junit::write(&parsed, "run <1> & co");
    let cases = parsed.cases().count();
    let failed = parsed.failed_count();
    let ignored = parsed.ignored_count();
    assert_eq!(
        xml.matches("<testcase ").count(),
        cases + parsed.anomalies.len()
    );
    assert_eq!(xml.matches("<failure ").count() as u64, failed);
    assert_eq!(xml.matches("<skipped/>").count() as u64, ignored);
    assert_eq!(
        xml.matches("<testsuite ").count(),
        xml.matches("</testsuite>").count()
    );
    assert!(xml.contains("name=\"run &lt;1&gt; &amp; co\""));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
    assert!(xml.contains(&format!("tests=\"{}\"", cases + parsed.anomalies.len())));
}

#[test]
fn junit_of_a_small_run_is_exact() {
    let stdout = "\nrunning 2 tests\ntest a::works ... ok\ntest b ... FAILED\n\nfailures:\n\nfailures:\n    b\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n";
    let parsed = libtest::parse(stdout, "");
    let xml = junit::write(&parsed, "demo");
    let label = &parsed.suites[0].label;
    let expected = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"demo\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\">\n  <testsuite name=\"{label}\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\">\n    <testcase classname=\"a\" name=\"works\"/>\n    <testcase classname=\"{label}\" name=\"b\"><failure message=\"test failed\"/></testcase>\n  </testsuite>\n</testsuites>\n"
    );
    assert_eq!(xml, expected);
}

#[test]
fn junit_of_a_failed_build_is_an_error_not_green() {
    let parsed = libtest::parse(&fixture("compile.stdout"), &fixture("compile.stderr"));
    let xml = junit::write(&parsed, "demo");
    assert!(xml.contains("<testsuite name=\"build\""));
    assert!(xml.contains("<error "));
    assert!(!xml.contains("errors=\"0\" skipped=\"0\">\n</testsuites>"));
}
