use super::*;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

fn args(diff: Option<&str>, staged: bool) -> ScanArgs {
    ScanArgs {
        path: None,
        diff: diff.map(str::to_string),
        staged,
        sarif: None,
        json: true,
        fail_on: Severity::High,
        roles: None,
        only: Vec::new(),
        list_rules: false,
    }
}

/// A value shaped like a Stripe live key, built at run time so none is committed.
fn stripe_value() -> String {
    format!(
        "sk_live_{}",
        "Zq3Vt8Lm2Xr9Kp4Wn7Bj6Hc1".chars().rev().collect::<String>()
    )
}

#[test]
fn staged_and_range_modes_find_a_planted_secret_and_a_dependency_bump() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    std::fs::write(
        r.join("Cargo.toml"),
        "[package]\nname = \"d\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"1\"\n",
    )
    .unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "base"]);
    std::fs::write(
        r.join("Cargo.toml"),
        "[package]\nname = \"d\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"2\"\n",
    )
    .unwrap();
    std::fs::write(
        r.join("pay.js"),
        format!("const k = '{}';\n", stripe_value()),
    )
    .unwrap();
    git(r, &["add", "."]);
    let ctx = Context::new(Some(r.to_path_buf()), None);
    let (f, mode, _) = scan(&ctx, &args(None, true)).unwrap();
    assert_eq!(mode, "staged");
    let ids: Vec<&str> = f.iter().map(|x| x.rule_id.as_str()).collect();
    assert!(ids.contains(&"ORC-SECRET-STRIPE-KEY"), "{ids:?}");
    assert!(ids.contains(&"ORC-DEP-BUMP-MAJOR"), "{ids:?}");
    assert!(report::blocks(&f, Severity::High));
    let json = serde_json::to_string(&f).unwrap();
    assert!(!json.contains(&stripe_value()));
    git(r, &["commit", "-q", "-m", "change"]);
    let (f2, mode, target) = scan(&ctx, &args(Some("HEAD~1..HEAD"), false)).unwrap();
    assert_eq!((mode, target.as_str()), ("diff", "HEAD~1..HEAD"));
    assert_eq!(f2, f);
    // Nothing staged any more: the hook mode passes.
    let (f3, _, _) = scan(&ctx, &args(None, true)).unwrap();
    assert!(f3.is_empty(), "{f3:?}");
}

#[test]
fn bad_revision_and_bad_category_are_usage_errors() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let ctx = Context::new(Some(repo.path().to_path_buf()), None);
    let e = scan(&ctx, &args(Some("nope..HEAD"), false)).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage, "{e}");
    let mut a = args(None, false);
    a.only = vec!["secretz".into()];
    assert_eq!(scan(&ctx, &a).unwrap_err().exit_code(), ExitCode::Usage);
}
