//! The test-runner: runs the approved test commands (argv split on whitespace, never a shell) in
//! the candidate tree, with builds in its scratch directory, and reads libtest's output.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use protocol::canonical::sha256;
use protocol::frame::{CommandRun, TestOutcome, TestResults, TestStatus};

use super::libtest;

/// Runs each command in `tree` and collects the results of iteration `iteration` on `commit`.
pub fn run_all(
    commands: &[String],
    tree: &Path,
    scratch: &Path,
    iteration: u32,
    commit: &str,
) -> TestResults {
    let mut runs = Vec::new();
    let mut tests = Vec::new();
    for command in commands {
        let (run, outcomes) = run_one(command, tree, scratch);
        runs.push(run);
        tests.extend(outcomes);
    }
    TestResults {
        iteration,
        commit: commit.to_owned(),
        commands: runs,
        tests,
        changed_lines_coverage_pct: None,
    }
}

fn run_one(command: &str, tree: &Path, scratch: &Path) -> (CommandRun, Vec<TestOutcome>) {
    let argv: Vec<&str> = command.split_whitespace().collect();
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
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (exit_code, stdout, stderr) = match output {
        Some(Ok(o)) => (o.status.code(), o.stdout, o.stderr),
        Some(Err(e)) => (
            Some(127),
            Vec::new(),
            format!("cannot run {command}: {e}").into_bytes(),
        ),
        None => (Some(127), Vec::new(), b"empty command".to_vec()),
    };
    let mut evidence = stdout.clone();
    evidence.extend_from_slice(&stderr);
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    eprintln!("test-runner: `{command}` exited {exit_code:?} in {duration_ms} ms");
    if exit_code != Some(0) {
        for line in stderr.lines().filter(|l| l.starts_with("error")).take(20) {
            eprintln!("test-runner:   {line}");
        }
    }
    let outcomes = if argv.first() == Some(&"cargo") && argv.get(1) == Some(&"test") {
        libtest::parse(&stdout, &stderr)
            .cases()
            .map(|c| TestOutcome {
                name: c.name.clone(),
                command: command.to_owned(),
                status: match c.status {
                    libtest::TestStatus::Passed => TestStatus::Passed,
                    libtest::TestStatus::Failed => TestStatus::Failed,
                    libtest::TestStatus::Ignored => TestStatus::Ignored,
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    let run = CommandRun {
        command: command.to_owned(),
        exit_code,
        duration_ms,
        output_sha256: sha256(&evidence).to_hex(),
    };
    (run, outcomes)
}
