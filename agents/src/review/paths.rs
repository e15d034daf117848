//! Rules on what a diff touches rather than what it says: protected paths, CI, git configuration
//! and hooks, persistence locations, modes, binaries, file types, and the diff's size.

use super::diff::FileDiff;
use super::finding::Finding;
use super::rules::{self, Category, Rule};
use globset::{Glob, GlobSet, GlobSetBuilder};

/// Compiles the protected-path globs; a glob that does not compile becomes a finding, so a typo in
/// roles.yaml is seen instead of silently protecting nothing.
pub fn protected_set(globs: &[String], out: &mut Vec<Finding>) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        match Glob::new(g) {
            Ok(glob) => {
                b.add(glob);
            }
            Err(e) => out.push(Finding::new(
                &rules::CONFIG_BAD_GLOB,
                "roles.yaml",
                0,
                format!("protected_paths entry {g:?} is not a valid glob: {e}"),
                g.as_bytes(),
            )),
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_ci(path: &str) -> bool {
    let name = file_name(path);
    path.starts_with(".github/workflows/")
        || path.starts_with(".github/actions/")
        || path == ".gitlab-ci.yml"
        || path.starts_with(".gitlab-ci/")
        || path.starts_with(".ci/")
        || path.starts_with(".circleci/")
        || path.starts_with(".buildkite/")
        || name == "Jenkinsfile"
        || path == ".travis.yml"
        || path == "azure-pipelines.yml"
        || path == "bitbucket-pipelines.yml"
        || path == ".drone.yml"
}

fn is_hook(path: &str) -> bool {
    path.starts_with(".git/hooks/")
        || path.contains("/.git/hooks/")
        || path.starts_with(".husky/")
        || path.starts_with(".githooks/")
        || path == ".pre-commit-config.yaml"
        || path == "lefthook.yml"
}

/// The persistence rule a path falls under, if any.
pub fn persistence_rule(path: &str) -> Option<&'static Rule> {
    let name = file_name(path);
    const RC: &[&str] = &[
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".zlogin",
        ".cshrc",
        ".tcshrc",
        ".kshrc",
        "config.fish",
    ];
    if RC.contains(&name) || path.contains("etc/profile.d/") {
        return Some(&rules::PERSIST_SHELL_RC);
    }
    let systemd_ext = [".service", ".timer", ".socket", ".path", ".mount"]
        .iter()
        .any(|e| name.ends_with(e));
    if path.contains("systemd/") && (systemd_ext || name.ends_with(".conf"))
        || name.ends_with(".service")
        || name.ends_with(".timer")
    {
        return Some(&rules::PERSIST_SYSTEMD);
    }
    if name == "crontab"
        || path.contains("cron.d/")
        || path.contains("cron.daily/")
        || path.contains("cron.hourly/")
        || path.contains("cron.weekly/")
        || path.contains("cron.monthly/")
        || path.contains("/crontabs/")
        || name.ends_with(".cron")
    {
        return Some(&rules::PERSIST_CRON);
    }
    if path.contains("autostart/") && name.ends_with(".desktop")
        || (path.contains("LaunchAgents/") || path.contains("LaunchDaemons/"))
            && name.ends_with(".plist")
    {
        return Some(&rules::PERSIST_AUTOSTART);
    }
    None
}

/// True when `path` looks like a test file.
pub fn is_test_path(path: &str) -> bool {
    let name = file_name(path);
    path.starts_with("tests/")
        || path.contains("/tests/")
        || path.starts_with("test/")
        || path.contains("/test/")
        || path.contains("__tests__/")
        || name.starts_with("test_") && name.ends_with(".py")
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
        || name.ends_with("_tests.rs")
        || name.ends_with("_test.rs")
        || [".test.", ".spec."].iter().any(|m| name.contains(m))
}

/// Path, mode and file-type rules for one file of a diff.
pub fn check_file(
    f: &FileDiff,
    protected: &GlobSet,
    allowed_ext: &[String],
    enabled: &dyn Fn(Category) -> bool,
    out: &mut Vec<Finding>,
) {
    let path = f.path();
    let mut push = |rule: &'static Rule, line: u32, msg: String, ev: &[u8]| {
        if enabled(rule.category) {
            out.push(Finding::new(rule, path, line, msg, ev));
        }
    };
    let names: Vec<&str> = [f.old_path.as_deref(), f.new_path.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if let Some(p) = names.iter().find(|p| protected.is_match(p)) {
        push(
            &rules::PATH_PROTECTED,
            0,
            format!("protected path {p} changed"),
            p.as_bytes(),
        );
    }
    if let Some(p) = names.iter().find(|p| is_ci(p)) {
        push(
            &rules::PATH_CI,
            0,
            format!("CI configuration {p} changed"),
            p.as_bytes(),
        );
    }
    if let Some(p) = names.iter().find(|p| is_hook(p)) {
        push(
            &rules::GIT_HOOKS,
            0,
            format!("git hook location {p} changed"),
            p.as_bytes(),
        );
    }
    if names.iter().any(|p| file_name(p) == ".gitmodules") {
        push(
            &rules::GIT_SUBMODULES,
            0,
            ".gitmodules changed".into(),
            path.as_bytes(),
        );
    }
    if names.iter().any(|p| file_name(p) == ".gitattributes") {
        let driver = f
            .added_iter()
            .find(|(_, l)| ["filter=", "diff=", "merge="].iter().any(|k| l.contains(k)));
        match driver {
            Some((n, l)) => push(
                &rules::GIT_ATTRIBUTES_FILTER,
                n,
                ".gitattributes sets a filter, diff or merge driver".into(),
                l.as_bytes(),
            ),
            None => push(
                &rules::GIT_ATTRIBUTES,
                0,
                ".gitattributes changed".into(),
                path.as_bytes(),
            ),
        }
    }
    if !f.is_deleted {
        if let Some(rule) = persistence_rule(path) {
            push(rule, 0, format!("{} at {path}", rule.name), path.as_bytes());
        }
    }
    if let Some(m) = f.new_mode {
        let was_exec = f.old_mode.is_some_and(|o| o & 0o111 != 0);
        if m == 0o120000 {
            push(
                &rules::FILE_SYMLINK,
                0,
                format!("symbolic link {path} added"),
                path.as_bytes(),
            );
        } else if m & 0o111 != 0 && !was_exec {
            push(
                &rules::FILE_EXECUTABLE,
                0,
                format!("{path} made executable ({m:o})"),
                path.as_bytes(),
            );
        }
    }
    if f.binary {
        push(
            &rules::FILE_BINARY,
            0,
            format!("binary file {path}"),
            path.as_bytes(),
        );
    }
    if !f.is_deleted {
        check_extension(path, allowed_ext, &mut push);
    }
}

/// The policy allowlist names extensions (`rs`, `.toml`) or whole file names (`Makefile`).
/// An empty allowlist means no policy.
pub fn extension_allowed(path: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let name = file_name(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    allowed.iter().any(|a| {
        let a = a.trim_start_matches('.');
        a == name || ext.is_some_and(|e| e.eq_ignore_ascii_case(a))
    })
}

/// How the path rules report: rule, line, message, evidence.
type Push<'a> = dyn FnMut(&'static Rule, u32, String, &[u8]) + 'a;

fn check_extension(path: &str, allowed: &[String], push: &mut Push<'_>) {
    if !extension_allowed(path, allowed) {
        push(
            &rules::FILE_TYPE,
            0,
            format!("{path}: file type not in the policy allowlist"),
            path.as_bytes(),
        );
    }
}

/// The diff-size rule: changed lines or files beyond `factor` times what the plan expected.
pub fn check_size(
    files: &[FileDiff],
    expected_lines: Option<u64>,
    expected_files: Option<u64>,
    factor: f64,
    out: &mut Vec<Finding>,
) {
    let lines: u64 = files
        .iter()
        .map(|f| (f.added_lines.len() + f.removed_lines.len()) as u64)
        .sum();
    let nfiles = files.len() as u64;
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let over = |actual: u64, expected: Option<u64>| {
        expected.is_some_and(|e| actual as f64 > (e.max(1) as f64) * factor)
    };
    if over(lines, expected_lines) || over(nfiles, expected_files) {
        let msg = format!(
            "diff changes {lines} lines in {nfiles} files; the plan expected {} lines in {} files (limit ×{factor})",
            expected_lines.map_or("?".to_string(), |e| e.to_string()),
            expected_files.map_or("?".to_string(), |e| e.to_string()),
        );
        out.push(Finding::new(
            &rules::DIFF_SIZE,
            "",
            0,
            msg,
            format!("{lines}/{nfiles}").as_bytes(),
        ));
    }
}
