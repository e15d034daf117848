//! A planted secret's value never appears in any output: findings JSON, the protocol `Review`
//! body, SARIF, the text report, or the log lines written while scanning.

use crate::fixtures::{new_file, scan};
use crate::gen::planted;
use orchestrate_agents::review::{report, sarif, ScanContext};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PUBLIC_PREFIXES: &[&str] = &[
    "hooks.slack.com/services/",
    "pypi-AgEIcHlwaS5vcmc",
    "AGE-SECRET-KEY-1",
];

#[test]
fn planted_values_appear_in_no_output() {
    let ps = planted(1234);
    let mut diff = String::new();
    for p in &ps {
        diff.push_str(&new_file(
            p.file,
            &format!("first line\n{}\nlast line", p.text),
        ));
    }
    let logs = Buf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let (findings, tree_findings) = tracing::subscriber::with_default(subscriber, || {
        let dir = tempfile::tempdir().unwrap();
        for (i, p) in ps.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{i}.cfg")), &p.text).unwrap();
        }
        let t = orchestrate_agents::review::scan_tree(dir.path(), &ScanContext::default()).unwrap();
        (scan(&diff), t)
    });
    // Every planted secret was found, so the outputs below do describe them.
    for p in &ps {
        assert!(
            findings.iter().any(|f| f.rule_id == p.rule),
            "{} not reported",
            p.rule
        );
        assert!(
            tree_findings.iter().any(|f| f.rule_id == p.rule),
            "{} not reported in tree scan",
            p.rule
        );
    }
    let protocol: Vec<_> = findings.iter().map(report::to_protocol).collect();
    let outputs = [
        ("findings JSON", serde_json::to_string(&findings).unwrap()),
        (
            "tree findings JSON",
            serde_json::to_string(&tree_findings).unwrap(),
        ),
        (
            "protocol review body",
            serde_json::to_string(&protocol).unwrap(),
        ),
        (
            "SARIF",
            serde_json::to_string(&sarif::to_sarif(&findings, "0")).unwrap(),
        ),
        ("text", report::render_text(&findings)),
        (
            "logs",
            String::from_utf8(logs.0.lock().unwrap().clone()).unwrap(),
        ),
    ];
    for p in &ps {
        // The whole value, and any 12-character window of it (a truncated copy leaks too).
        // Public prefixes (a provider's fixed token header, a webhook host) are not the secret:
        // a finding may name the host of a URL. Windows start after them.
        let v = p.value.replace("\\n", "\n");
        let v = PUBLIC_PREFIXES
            .iter()
            .fold(v.as_str(), |acc, pre| acc.strip_prefix(pre).unwrap_or(acc))
            .to_string();
        let windows: Vec<&str> = (0..v.len().saturating_sub(12))
            .step_by(6)
            .filter_map(|i| v.get(i..i + 12))
            .filter(|w| !w.contains('\n') && !w.contains("-----"))
            .collect();
        for (name, out) in &outputs {
            assert!(
                !out.contains(&p.value),
                "{}: value appears in {name}",
                p.rule
            );
            for w in &windows {
                assert!(
                    !out.contains(w),
                    "{}: part {w:?} of the value appears in {name}",
                    p.rule
                );
            }
        }
    }
}
