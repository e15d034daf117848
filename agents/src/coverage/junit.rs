//! Test results as JUnit XML (the dialect CI systems and test viewers read): one `<testsuite>`
//! per libtest binary, a `<failure>` per failed test, `<skipped>` per ignored one; a build that
//! failed is one suite `build` with an `<error>` per compiler error, and every parser anomaly
//! (forged or missing result lines) is an `<error>` in a suite `anomalies`, so a viewer never
//! shows such a run as green.

use crate::roles::libtest::{Anomaly, Build, Parsed, TestStatus};
use std::fmt::Write as _;

/// Escapes text for an XML attribute or text node; characters XML 1.0 cannot carry are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 || matches!(u32::from(c), 0xFFFE | 0xFFFF) => {}
            c => out.push(c),
        }
    }
    out
}

fn anomaly_text(a: &Anomaly) -> String {
    match a {
        Anomaly::DuplicateName { suite, name } => format!("{suite}: test {name} reported twice"),
        Anomaly::CountMismatch {
            suite,
            declared,
            reported,
        } => format!("{suite}: announced {declared} tests, reported {reported}"),
        Anomaly::SummaryMismatch { suite } => format!("{suite}: summary disagrees with results"),
        Anomaly::Unfinished { suite } => format!("{suite}: never finished"),
        Anomaly::ResultOutsideSuite { line } => format!("result line {line} outside any suite"),
    }
}

/// Splits `a::b::c` into (`a::b`, `c`); a name without `::` has the suite as class.
fn class_and_name<'a>(suite: &'a str, full: &'a str) -> (&'a str, &'a str) {
    match full.rsplit_once("::") {
        Some((c, n)) => (c, n),
        None => (suite, full),
    }
}

/// The JUnit XML document for `parsed`; `name` names the whole run (`<testsuites name=...>`).
pub fn write(parsed: &Parsed, name: &str) -> String {
    let mut body = String::new();
    let (mut tests, mut failures, mut skipped, mut errors) = (0usize, 0usize, 0usize, 0usize);
    if let Build::Failed { errors: errs } = &parsed.build {
        let _ = writeln!(
            body,
            "  <testsuite name=\"build\" tests=\"{n}\" failures=\"0\" errors=\"{n}\" skipped=\"0\">",
            n = errs.len().max(1)
        );
        if errs.is_empty() {
            let _ = writeln!(body, "    <testcase classname=\"build\" name=\"compile\"><error message=\"build failed\"/></testcase>");
        }
        for (i, e) in errs.iter().enumerate() {
            let code = e.code.as_deref().unwrap_or("error");
            let _ = writeln!(
                body,
                "    <testcase classname=\"build\" name=\"{}\"><error type=\"{}\" message=\"{}\"/></testcase>",
                i + 1,
                escape(code),
                escape(&e.message)
            );
        }
        let _ = writeln!(body, "  </testsuite>");
        tests += errs.len().max(1);
        errors += errs.len().max(1);
    }
    for s in &parsed.suites {
        let f = s
            .cases
            .iter()
            .filter(|c| c.status == TestStatus::Failed)
            .count();
        let k = s
            .cases
            .iter()
            .filter(|c| c.status == TestStatus::Ignored)
            .count();
        let _ = writeln!(
            body,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"0\" skipped=\"{k}\">",
            escape(&s.label),
            s.cases.len()
        );
        for c in &s.cases {
            let (class, short) = class_and_name(&s.label, &c.name);
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(class),
                escape(short)
            );
            match c.status {
                TestStatus::Passed => {
                    let _ = writeln!(body, "{open}/>");
                }
                TestStatus::Failed => {
                    let _ = writeln!(body, "{open}><failure message=\"test failed\"/></testcase>");
                }
                TestStatus::Ignored => {
                    let _ = writeln!(body, "{open}><skipped/></testcase>");
                }
            }
        }
        let _ = writeln!(body, "  </testsuite>");
        tests += s.cases.len();
        failures += f;
        skipped += k;
    }
    if !parsed.anomalies.is_empty() {
        let n = parsed.anomalies.len();
        let _ = writeln!(
            body,
            "  <testsuite name=\"anomalies\" tests=\"{n}\" failures=\"0\" errors=\"{n}\" skipped=\"0\">"
        );
        for (i, a) in parsed.anomalies.iter().enumerate() {
            let _ = writeln!(
                body,
                "    <testcase classname=\"anomalies\" name=\"{}\"><error type=\"anomaly\" message=\"{}\"/></testcase>",
                i + 1,
                escape(&anomaly_text(a))
            );
        }
        let _ = writeln!(body, "  </testsuite>");
        tests += n;
        errors += n;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n{body}</testsuites>\n",
        escape(name)
    )
}
