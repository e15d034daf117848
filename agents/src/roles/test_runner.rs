//! The test-runner: runs the approved test commands (argv split on whitespace, never a shell) in
//! the candidate tree, with builds in its scratch directory, and reads libtest's output.
//!
//! When the plan sets a coverage threshold the first `cargo test` command runs through
//! `cargo llvm-cov` instead (same tests, instrumented; target dir and `.profraw` profiles in
//! scratch), and the change from the base tree to the candidate is measured against the lcov it
//! writes. The JUnit XML and the lcov tracefile are left in `<scratch>/evidence/`; their SHA-256
//! are subjects of the signed result, so the orchestrator and the gate can tell a swapped file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use protocol::canonical::sha256;
use protocol::frame::{CommandRun, TestOutcome, TestResults, TestStatus};

use super::input::CoverageTask;
use super::libtest::{self, Build, Parsed};
use crate::coverage::{self, junit, ChangedCoverage, CoverageCommand, CoverageError};
use crate::review::diff_trees;

/// Name of the JUnit file in the evidence directory and in the signed artifact's subjects.
pub const JUNIT_FILE: &str = "junit.xml";
/// Name of the lcov tracefile in the evidence directory and in the signed artifact's subjects.
pub const LCOV_FILE: &str = "lcov.info";

/// Where the test-runner leaves its evidence files: `<scratch>/evidence`.
pub fn evidence_dir(scratch: &Path) -> PathBuf {
    scratch.join("evidence")
}

/// The files and figures a test run hands over besides [`TestResults`].
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// JUnit XML of every `cargo test` command's results.
    pub junit: Vec<u8>,
    /// The lcov tracefile as the coverage run wrote it, when coverage was measured.
    pub lcov: Option<Vec<u8>>,
    /// Changed-line and per-file coverage, when measured.
    pub coverage: Option<ChangedCoverage>,
    /// Why coverage was asked for and not measured.
    pub coverage_error: Option<String>,
}

/// Runs each command in `tree` and collects the results of iteration `iteration` on `commit`;
/// with `coverage`, measures the change's coverage through the first `cargo test` command.
pub fn run_all(
    commands: &[String],
    tree: &Path,
    scratch: &Path,
    iteration: u32,
    commit: &str,
    coverage: Option<&CoverageTask>,
) -> (TestResults, Evidence) {
    let mut runs = Vec::new();
    let mut tests = Vec::new();
    let mut parsed_all: Option<Parsed> = None;
    let mut evidence = Evidence::default();
    let mut pending = coverage;
    let dir = evidence_dir(scratch);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("test-runner: cannot create {}: {e}", dir.display());
    }
    for command in commands {
        let argv: Vec<&str> = command.split_whitespace().collect();
        let is_cargo_test = argv.first() == Some(&"cargo") && argv.get(1) == Some(&"test");
        let out = match pending.filter(|t| is_cargo_test && t.command.is_none()) {
            Some(task) => {
                pending = None;
                let (out, measured) = run_measured(command, &argv, tree, scratch, task);
                match measured {
                    Ok((bytes, cov)) => {
                        evidence.lcov = Some(bytes);
                        evidence.coverage = Some(cov);
                        out
                    }
                    Err(e) => {
                        evidence.coverage_error = Some(e);
                        // The coverage tool failed before any test ran (not installed, no
                        // llvm-tools): the tests still run plainly, without a coverage figure.
                        let ran_tests =
                            libtest::parse(&out.stdout, &out.stderr).cases().count() > 0;
                        if ran_tests || out.exit_code.is_none() {
                            out
                        } else {
                            report(command, &out);
                            eprintln!("test-runner: no test ran under coverage; running `{command}` plainly");
                            run_plain(command, &argv, tree, scratch)
                        }
                    }
                }
            }
            None => run_plain(command, &argv, tree, scratch),
        };
        report(command, &out);
        if is_cargo_test {
            let parsed = libtest::parse(&out.stdout, &out.stderr);
            tests.extend(parsed.cases().map(|c| TestOutcome {
                name: c.name.clone(),
                command: command.to_owned(),
                status: match c.status {
                    libtest::TestStatus::Passed => TestStatus::Passed,
                    libtest::TestStatus::Failed => TestStatus::Failed,
                    libtest::TestStatus::Ignored => TestStatus::Ignored,
                },
            }));
            parsed_all = Some(match parsed_all {
                None => parsed,
                Some(acc) => merge(acc, parsed),
            });
        }
        runs.push(CommandRun {
            command: out.ran.clone(),
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            output_sha256: sha256(format!("{}{}", out.stdout, out.stderr).as_bytes()).to_hex(),
        });
    }
    if let Some(task) = pending {
        match &task.command {
            Some(command) => {
                let (out, measured) = run_command_measured(command, tree, scratch, task);
                report(command, &out);
                match measured {
                    Ok((bytes, cov)) => {
                        evidence.lcov = Some(bytes);
                        evidence.coverage = Some(cov);
                    }
                    Err(e) => evidence.coverage_error = Some(e),
                }
                runs.push(CommandRun {
                    command: out.ran.clone(),
                    exit_code: out.exit_code,
                    duration_ms: out.duration_ms,
                    output_sha256: sha256(format!("{}{}", out.stdout, out.stderr).as_bytes())
                        .to_hex(),
                });
            }
            None => {
                evidence.coverage_error =
                    Some("no `cargo test` command to measure coverage with".into());
            }
        }
    }
    if let Some(e) = &evidence.coverage_error {
        eprintln!("test-runner: coverage not measured: {e}");
    }
    let parsed = parsed_all.unwrap_or(Parsed {
        build: Build::Ok,
        suites: Vec::new(),
        anomalies: Vec::new(),
    });
    evidence.junit = junit::write(&parsed, &format!("iteration-{iteration}")).into_bytes();
    let junit_path = dir.join(JUNIT_FILE);
    if let Err(e) = std::fs::write(&junit_path, &evidence.junit) {
        eprintln!("test-runner: cannot write {}: {e}", junit_path.display());
    }
    let results = TestResults {
        iteration,
        commit: commit.to_owned(),
        commands: runs,
        tests,
        changed_lines_coverage_pct: evidence.coverage.as_ref().and_then(ChangedCoverage::pct),
    };
    (results, evidence)
}

/// One command's process output.
struct Output {
    /// The command line that actually ran.
    ran: String,
    exit_code: Option<i32>,
    duration_ms: u64,
    stdout: String,
    stderr: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn run_plain(command: &str, argv: &[&str], tree: &Path, scratch: &Path) -> Output {
    let started = Instant::now();
    let output = argv.split_first().map(|(program, args)| {
        Command::new(program)
            .args(args)
            .current_dir(tree)
            .env("CARGO_TARGET_DIR", scratch.join("target"))
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_NET_OFFLINE", "true")
            .output()
    });
    let duration_ms = millis(started.elapsed());
    let (exit_code, stdout, stderr) = match output {
        Some(Ok(o)) => (o.status.code(), o.stdout, o.stderr),
        Some(Err(e)) => (
            Some(127),
            Vec::new(),
            format!("cannot run {command}: {e}").into_bytes(),
        ),
        None => (Some(127), Vec::new(), b"empty command".to_vec()),
    };
    Output {
        ran: command.to_owned(),
        exit_code,
        duration_ms,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `cargo test ARGS` as `cargo llvm-cov ... ARGS` and measures the change base → tree.
fn run_measured(
    command: &str,
    argv: &[&str],
    tree: &Path,
    scratch: &Path,
    task: &CoverageTask,
) -> (Output, Result<(Vec<u8>, ChangedCoverage), String>) {
    let lcov_path = evidence_dir(scratch).join(LCOV_FILE);
    // A tracefile from an earlier iteration must not pass for this one's.
    let _ = std::fs::remove_file(&lcov_path);
    let cmd = CoverageCommand::for_cargo_test(
        tree,
        &scratch.join("target"),
        &lcov_path,
        argv.get(2..).unwrap_or_default(),
        Duration::from_secs(task.timeout_s),
    );
    eprintln!("test-runner: `{command}` measured as `{}`", cmd.display());
    measure(cmd, tree, task)
}

/// Runs the FR's own coverage command (`{lcov}` replaced by the tracefile's path) in `tree`.
fn run_command_measured(
    command: &str,
    tree: &Path,
    scratch: &Path,
    task: &CoverageTask,
) -> (Output, Result<(Vec<u8>, ChangedCoverage), String>) {
    let lcov_path = evidence_dir(scratch).join(LCOV_FILE);
    let _ = std::fs::remove_file(&lcov_path);
    let lcov = lcov_path.to_string_lossy();
    let mut argv = command
        .split_whitespace()
        .map(|a| std::ffi::OsString::from(a.replace("{lcov}", &lcov)));
    let program = argv.next().unwrap_or_default();
    let cmd = CoverageCommand {
        program,
        args: argv.collect(),
        dir: tree.to_path_buf(),
        env: vec![
            ("CARGO_TARGET_DIR".into(), scratch.join("target").into()),
            ("CARGO_TERM_COLOR".into(), "never".into()),
            ("CARGO_NET_OFFLINE".into(), "true".into()),
        ],
        lcov_path: lcov_path.clone(),
        timeout: Duration::from_secs(task.timeout_s),
    };
    eprintln!("test-runner: coverage command `{}`", cmd.display());
    measure(cmd, tree, task)
}

/// Runs a coverage command and measures the change base → tree against the lcov it wrote.
fn measure(
    cmd: CoverageCommand,
    tree: &Path,
    task: &CoverageTask,
) -> (Output, Result<(Vec<u8>, ChangedCoverage), String>) {
    let lcov_path = cmd.lcov_path.clone();
    let ran = cmd.display();
    let started = Instant::now();
    let result = cmd.run();
    let duration_ms = millis(started.elapsed());
    let (out, run) = match result {
        Ok(run) => (
            Output {
                ran,
                exit_code: run.exit_code,
                duration_ms,
                stdout: run.stdout.clone(),
                stderr: run.stderr.clone(),
            },
            run,
        ),
        Err(CoverageError::Failed {
            exit_code,
            stdout,
            stderr,
            ..
        }) => {
            let out = Output {
                ran,
                exit_code,
                duration_ms,
                stdout,
                stderr,
            };
            let why = format!("the coverage run exited with {exit_code:?} and wrote no lcov");
            return (out, Err(why));
        }
        Err(e) => {
            let out = Output {
                ran,
                exit_code: match e {
                    CoverageError::Timeout { .. } => None,
                    _ => Some(127),
                },
                duration_ms,
                stdout: String::new(),
                stderr: e.to_string(),
            };
            return (out, Err(e.to_string()));
        }
    };
    let measured = std::fs::read(&lcov_path)
        .map_err(|e| format!("reading {}: {e}", lcov_path.display()))
        .and_then(|bytes| {
            let diff = diff_trees(&task.base_tree, tree).map_err(|e| e.to_string())?;
            let lcov = relative(&run.lcov, tree);
            Ok((bytes, coverage::compute(&diff, &lcov)))
        });
    (out, measured)
}

/// The tracefile with names relative to `tree` (also when the tools resolved a symlink in it).
pub fn relative(lcov: &coverage::Lcov, tree: &Path) -> coverage::Lcov {
    let rel = lcov.relative_to(tree);
    match tree.canonicalize() {
        Ok(real) if real != tree => rel.relative_to(&real),
        _ => rel,
    }
}

fn report(command: &str, out: &Output) {
    eprintln!(
        "test-runner: `{command}` exited {:?} in {} ms",
        out.exit_code, out.duration_ms
    );
    if out.exit_code != Some(0) {
        for line in out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .take(20)
        {
            eprintln!("test-runner:   {line}");
        }
    }
}

/// Two invocations' results as one (JUnit of the whole test step).
fn merge(mut a: Parsed, b: Parsed) -> Parsed {
    a.build = match (a.build, b.build) {
        (Build::Failed { mut errors }, Build::Failed { errors: more }) => {
            errors.extend(more);
            Build::Failed { errors }
        }
        (f @ Build::Failed { .. }, Build::Ok) | (Build::Ok, f @ Build::Failed { .. }) => f,
        (Build::Ok, Build::Ok) => Build::Ok,
    };
    a.suites.extend(b.suites);
    a.anomalies.extend(b.anomalies);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(base: &Path) -> CoverageTask {
        CoverageTask {
            base_tree: base.to_path_buf(),
            timeout_s: 60,
            command: None,
        }
    }

    #[test]
    fn an_fr_coverage_command_writes_the_lcov_the_change_is_measured_against() {
        let dir = tempfile::tempdir().unwrap();
        let (base, tree) = (dir.path().join("base"), dir.path().join("tree"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(base.join("a.py"), "x = 1\n").unwrap();
        std::fs::write(tree.join("a.py"), "x = 1\ny = 2\nz = 3\n").unwrap();
        // What a coverage tool would write: line 2 ran, line 3 did not.
        let fixture = dir.path().join("fixture.info");
        std::fs::write(
            &fixture,
            format!(
                "SF:{}\nDA:1,1\nDA:2,1\nDA:3,0\nend_of_record\n",
                tree.join("a.py").display()
            ),
        )
        .unwrap();
        let mut t = task(&base);
        t.command = Some(format!("cp {} {{lcov}}", fixture.display()));
        let (r, ev) = run_all(&[], &tree, &dir.path().join("scratch"), 1, "c", Some(&t));
        assert_eq!(r.changed_lines_coverage_pct, Some(50.0), "{ev:?}");
        assert_eq!(r.commands.len(), 1);
        assert!(r.commands[0].command.starts_with("cp "), "{:?}", r.commands);
        assert_eq!(ev.lcov.unwrap(), std::fs::read(&fixture).unwrap());
        assert_eq!(ev.coverage.unwrap().files[0].uncovered_lines, vec![3]);
    }

    #[test]
    fn a_coverage_command_that_writes_no_lcov_gives_no_figure() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = task(dir.path());
        t.command = Some("true {lcov}".into());
        let (r, ev) = run_all(
            &[],
            dir.path(),
            &dir.path().join("scratch"),
            1,
            "c",
            Some(&t),
        );
        assert_eq!(r.changed_lines_coverage_pct, None);
        assert!(ev.lcov.is_none());
        assert!(ev.coverage_error.is_some());
    }

    #[test]
    fn without_a_cargo_test_command_coverage_is_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (r, ev) = run_all(
            &["true".to_string()],
            dir.path(),
            &dir.path().join("scratch"),
            1,
            "c",
            Some(&task(dir.path())),
        );
        assert_eq!(r.changed_lines_coverage_pct, None);
        assert_eq!(r.commands[0].exit_code, Some(0));
        assert!(ev.coverage_error.unwrap().contains("no `cargo test`"));
        assert!(ev.lcov.is_none());
        // The JUnit file is written and is what the evidence carries.
        let junit = std::fs::read(dir.path().join("scratch/evidence/junit.xml")).unwrap();
        assert_eq!(junit, ev.junit);
    }

    #[test]
    fn merged_results_keep_every_suite_and_a_build_failure() {
        let ok = libtest::parse(
            "running 1 test\ntest a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
            "     Running unittests src/lib.rs (target/debug/deps/x-1)\n",
        );
        let broken = libtest::parse("", "error[E0425]: cannot find value `y`\n");
        let m = merge(ok.clone(), broken);
        assert_eq!(m.suites.len(), ok.suites.len());
        assert!(matches!(m.build, Build::Failed { .. }), "{:?}", m.build);
        assert_eq!(m.cases().count(), 1);
    }
}
