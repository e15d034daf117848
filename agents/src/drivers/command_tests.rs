use super::*;
use protocol::roles::{CommandFile, CommandSettings};

fn vars(dir: &Path) -> Placeholders {
    Placeholders {
        task: "add slugify".into(),
        base_url: "http://127.0.0.1:18080/v1".into(),
        home: dir.join("home").display().to_string(),
        worktree: dir.join("work").display().to_string(),
    }
}

fn task(argv: &[&str], timeout_s: u64) -> CommandTask {
    CommandTask {
        settings: CommandSettings {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: BTreeMap::from([("CLI_HOME".to_owned(), "{home}/.cli".to_owned())]),
            token_env: "CLI_API_KEY".into(),
            files: vec![CommandFile {
                path: "{home}/.cli/config.toml".into(),
                content: "base_url = \"{base_url}\"\ntask = \"{task}\"\n".into(),
            }],
        },
        task: "add slugify".into(),
        timeout_s,
    }
}

#[test]
fn placeholders_are_replaced_once_and_unknown_braces_kept() {
    let v = Placeholders {
        task: "x {home} y".into(),
        base_url: "B".into(),
        home: "/h".into(),
        worktree: "/w".into(),
    };
    assert_eq!(
        v.apply("{task}|{base_url}|{home}/a|{worktree}|{nope}|{"),
        "x {home} y|B|/h/a|/w|{nope}|{"
    );
}

#[test]
fn the_cli_runs_in_the_worktree_with_its_config_and_the_token_only_under_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let v = vars(dir.path());
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let script = "pwd > seen; echo \"key=$CLI_API_KEY gw=${ORCHESTRATE_GATEWAY_TOKEN:-none} k=${ORCHESTRATE_KEY:-none}\" >> seen; cat \"$CLI_HOME/config.toml\" >> seen";
    std::env::set_var("ORCHESTRATE_KEY", "/secret/key");
    let s = run_cli(
        &task(&["sh", "-c", script], 30),
        &v,
        "tok123",
        &dir.path().join("work"),
    )
    .unwrap();
    assert!(s.success());
    let seen = std::fs::read_to_string(dir.path().join("work/seen")).unwrap();
    assert!(
        seen.starts_with(&dir.path().join("work").display().to_string()),
        "{seen}"
    );
    assert!(seen.contains("key=tok123 gw=none k=none"), "{seen}");
    assert!(
        seen.contains("base_url = \"http://127.0.0.1:18080/v1\"\ntask = \"add slugify\""),
        "{seen}"
    );
    let mode = std::fs::metadata(dir.path().join("home/.cli/config.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_cli_past_its_timeout_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let t0 = Instant::now();
    let s = run_cli(
        &task(&["sleep", "30"], 1),
        &vars(dir.path()),
        "t",
        &dir.path().join("work"),
    )
    .unwrap();
    assert!(!s.success());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[test]
fn a_missing_cli_is_a_spawn_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let e = run_cli(
        &task(&["no-such-cli-xyz"], 5),
        &vars(dir.path()),
        "t",
        &dir.path().join("work"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no-such-cli-xyz"), "{e}");
}
