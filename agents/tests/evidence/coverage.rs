//! Changed-line coverage computed exactly on a fixture, and one real `cargo llvm-cov` run on
//! the example project when cargo-llvm-cov is installed.

use orchestrate_agents::coverage::{self, lcov, CoverageCommand};
use orchestrate_agents::review::diff;
use std::path::Path;
use std::time::Duration;

const LCOV: &str = "TN:\nSF:/repo/src/lib.rs\nFN:1,add\nDA:1,4\nDA:2,4\nDA:3,0\nDA:5,2\nDA:6,0\nDA:7,0\nLF:6\nLH:3\nend_of_record\nSF:/repo/src/other.rs\nDA:1,1\nDA:2,1\nend_of_record\nSF:/repo/src/lib.rs\nDA:3,1\nend_of_record\n";

/// src/lib.rs: lines 2, 3, 4 (not instrumented) and 6 added; src/new.rs (not in lcov) added;
/// README.md changed; src/gone.rs deleted.
const DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs
index 1..2 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,5 +1,7 @@
 fn a() {}
+fn b() {}
+fn c() {}
+// comment
 fn d() {}
-old
+fn e() {}
 fn f() {}
diff --git a/src/new.rs b/src/new.rs
new file mode 100644
--- /dev/null
+++ b/src/new.rs
@@ -0,0 +1,2 @@
+pub fn n() {}
+pub fn m() {}
diff --git a/src/gone.rs b/src/gone.rs
deleted file mode 100644
--- a/src/gone.rs
+++ /dev/null
@@ -1 +0,0 @@
-fn gone() {}
";

#[test]
fn changed_line_coverage_is_exact_on_a_known_lcov_and_diff() {
    let l = lcov::parse(LCOV).unwrap().relative_to(Path::new("/repo"));
    // Line 3 appears in two records (0 + 1 hits): summed, so covered.
    assert_eq!(l.files["src/lib.rs"][&3], 1);
    let files = diff::parse(DIFF);
    let c = coverage::compute(&files, &l);
    assert_eq!(
        c.files.len(),
        2,
        "deleted files are left out: {:?}",
        c.files
    );
    let lib = &c.files[0];
    assert_eq!(lib.file, "src/lib.rs");
    assert_eq!(lib.changed_lines, 4); // 2, 3, 4, 6
    assert_eq!(lib.changed_instrumented, 3); // 4 is a comment
    assert_eq!(lib.changed_covered, 2); // 2 (4 hits), 3 (1 hit); 6 has 0
    assert_eq!(lib.uncovered_lines, vec![6]);
    assert_eq!(lib.file_instrumented, 6);
    assert_eq!(lib.file_covered, 4); // 1, 2, 3, 5
    assert!(lib.measured);
    let new = &c.files[1];
    assert_eq!(
        (
            new.file.as_str(),
            new.changed_lines,
            new.changed_instrumented,
            new.measured
        ),
        ("src/new.rs", 2, 0, false)
    );
    assert_eq!(new.changed_pct(), None);
    assert_eq!((c.instrumented, c.covered), (3, 2));
    let pct = c.pct().unwrap();
    assert!((pct - 200.0 / 3.0).abs() < 1e-9, "{pct}");
    assert!((lib.file_pct().unwrap() - 400.0 / 6.0).abs() < 1e-9);
}

#[test]
fn malformed_lcov_is_an_error_naming_the_line() {
    let e = lcov::parse("SF:a\nDA:x,1\nend_of_record\n").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = lcov::parse("DA:1,1\n").unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
}

#[test]
fn coverage_argv_is_built_in_one_place() {
    let c = CoverageCommand::cargo_llvm_cov(
        Path::new("/p"),
        Path::new("/scratch/t"),
        Path::new("/scratch/lcov.info"),
        false,
        Duration::from_secs(60),
    );
    assert_eq!(
        c.display(),
        "cargo llvm-cov --lcov --output-path /scratch/lcov.info"
    );
    assert!(c
        .env
        .iter()
        .any(|(k, v)| k == "CARGO_TARGET_DIR" && v == "/scratch/t"));
}

#[test]
fn missing_program_is_a_spawn_error_and_deadline_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = CoverageCommand::cargo_llvm_cov(
        dir.path(),
        dir.path(),
        &dir.path().join("l.info"),
        false,
        Duration::from_secs(5),
    );
    c.program = "/nonexistent/cargo".into();
    assert!(matches!(
        c.run(),
        Err(coverage::CoverageError::Spawn { .. })
    ));
    c.program = "sleep".into();
    c.args = vec!["30".into()];
    c.timeout = Duration::from_millis(300);
    let start = std::time::Instant::now();
    assert!(matches!(
        c.run(),
        Err(coverage::CoverageError::Timeout { .. })
    ));
    assert!(start.elapsed() < Duration::from_secs(10));
    c.program = "false".into();
    c.args = vec![];
    c.timeout = Duration::from_secs(5);
    assert!(matches!(
        c.run(),
        Err(coverage::CoverageError::Failed {
            exit_code: Some(1),
            ..
        })
    ));
}

fn llvm_cov_installed() -> bool {
    std::process::Command::new("cargo")
        .args(["llvm-cov", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn real_cargo_llvm_cov_run_on_the_example_gives_lcov_for_its_sources() {
    if !llvm_cov_installed() {
        eprintln!("SKIP: cargo-llvm-cov is not installed (scripts/setup.sh installs it)");
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/textkit");
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("lcov.info");
    let c = CoverageCommand::cargo_llvm_cov(
        &example,
        &scratch.path().join("target"),
        &out,
        false,
        Duration::from_secs(600),
    );
    let run = c.run().unwrap();
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);
    let root = example.canonicalize().unwrap();
    let l = run.lcov.relative_to(&root);
    let lib = l
        .files
        .get("src/lib.rs")
        .unwrap_or_else(|| panic!("no src/lib.rs in {:?}", l.files.keys()));
    assert!(lib.values().any(|&h| h > 0), "nothing covered");
    // The test output is captured for the artifact and parses as libtest output.
    let parsed = orchestrate_agents::roles::libtest::parse(&run.stdout, &run.stderr);
    assert!(parsed.passed_count() > 0, "stdout: {}", run.stdout);
}
