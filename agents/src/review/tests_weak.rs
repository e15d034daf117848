//! Structural test-weakening rules: deleted test files, deleted test functions, and new tests
//! that assert nothing. (Disabled tests and assertions that cannot fail are line rules in
//! `text.rs`.)

use super::diff::FileDiff;
use super::finding::Finding;
use super::paths::is_test_path;
use super::rules;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Res {
    rust_attr: Regex,
    rust_fn: Regex,
    py_def: Regex,
    js_test: Regex,
    go_test: Regex,
}

fn res() -> Option<&'static Res> {
    static R: OnceLock<Option<Res>> = OnceLock::new();
    R.get_or_init(|| {
        Some(Res {
            rust_attr: Regex::new(r"^\s*#\[(?:[\w:]+::)?test\b").ok()?,
            rust_fn: Regex::new(r"^\s*(?:pub\s+)?(?:async\s+)?fn\s+(\w+)").ok()?,
            py_def: Regex::new(r"^(\s*)(?:async\s+)?def\s+(test\w*)\s*\(").ok()?,
            js_test: Regex::new(r#"^\s*(?:it|test)\s*\(\s*['"`]([^'"`]{1,200})['"`]"#).ok()?,
            go_test: Regex::new(r"^func\s+(Test\w+)\s*\(").ok()?,
        })
    })
    .as_ref()
}

/// Test names defined in a sequence of lines, with the line number of each definition.
fn test_names<'a>(lines: impl Iterator<Item = (u32, &'a str)>, r: &Res) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut after_attr = 0u8;
    for (n, l) in lines {
        if r.rust_attr.is_match(l) {
            after_attr = 4;
            continue;
        }
        if after_attr > 0 {
            after_attr -= 1;
            if let Some(c) = r.rust_fn.captures(l) {
                out.insert(c[1].to_string(), n);
                after_attr = 0;
            }
            continue;
        }
        let name = r
            .py_def
            .captures(l)
            .map(|c| c[2].to_string())
            .or_else(|| r.js_test.captures(l).map(|c| c[1].to_string()))
            .or_else(|| r.go_test.captures(l).map(|c| c[1].to_string()));
        if let Some(name) = name {
            out.insert(name, n);
        }
    }
    out
}

/// Test-weakening findings for one file.
pub fn check_file(f: &FileDiff, out: &mut Vec<Finding>) {
    let Some(r) = res() else { return };
    let path = f.path();
    if f.is_deleted && is_test_path(path) {
        out.push(Finding::new(
            &rules::TEST_DELETED_FILE,
            path,
            0,
            format!("test file {path} deleted"),
            path.as_bytes(),
        ));
        return;
    }
    let removed = test_names(f.removed_iter(), r);
    let added = test_names(f.added_iter(), r);
    for (name, old_line) in &removed {
        if !added.contains_key(name) {
            out.push(Finding::new(
                &rules::TEST_DELETED_FN,
                path,
                0,
                format!("test `{name}` removed (old line {old_line})"),
                name.as_bytes(),
            ));
        }
    }
    for (name, line) in &added {
        if removed.contains_key(name) {
            continue;
        }
        if let Some(body) = body_after(f, *line) {
            if !asserts(&body) {
                out.push(Finding::new(
                    &rules::TEST_NO_ASSERT,
                    path,
                    *line,
                    format!("new test `{name}` has no assertion"),
                    name.as_bytes(),
                ));
            }
        }
    }
}

/// The body of the test defined at new line `start`, from the added lines that follow it
/// contiguously; `None` when the body is not wholly inside the diff.
fn body_after(f: &FileDiff, start: u32) -> Option<String> {
    let lines: Vec<(u32, &str)> = f.added_iter().skip_while(|(n, _)| *n < start).collect();
    let (_, first) = lines.first()?;
    let mut body = String::new();
    if first.trim_end().ends_with(':') && first.contains("def ") {
        let indent = first.len() - first.trim_start().len();
        let mut prev = start;
        for (n, l) in lines.iter().skip(1) {
            if *n != prev + 1 {
                return None;
            }
            prev = *n;
            if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                return Some(body);
            }
            body.push_str(l);
            body.push('\n');
        }
        return Some(body);
    }
    let mut depth = 0i32;
    let mut opened = false;
    let mut prev = start.saturating_sub(1);
    for (n, l) in &lines {
        if *n != prev + 1 {
            return None;
        }
        prev = *n;
        for ch in l.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        body.push_str(l);
        body.push('\n');
        if opened && depth <= 0 {
            return Some(body);
        }
    }
    None
}

fn asserts(body: &str) -> bool {
    const MARKERS: &[&str] = &[
        "assert", "panic!", "expect", "unwrap", "should", "?;", "? ;", "raises", "fail", "Err(",
        "matches!", "bail!", "t.Error", "t.Fatal", "require.", "verify", "check",
    ];
    MARKERS.iter().any(|m| body.contains(m))
}
