use std::path::PathBuf;

use super::*;

fn spec(roles: &[(&str, &str)]) -> SetupSpec {
    SetupSpec {
        roles: roles
            .iter()
            .map(|(l, u)| ((*l).to_owned(), (*u).to_owned()))
            .collect(),
        gate_user: "orch-gate".to_owned(),
        orchestrator_user: "orch-run".to_owned(),
        state_dir: PathBuf::from("/var/lib/orchestrate"),
        db_file: "state.db".to_owned(),
    }
}

fn account(name: &str, comment: &str) -> [Step; 2] {
    [
        Step::Group {
            name: name.to_owned(),
        },
        Step::User {
            name: name.to_owned(),
            group: name.to_owned(),
            home: PathBuf::from("/nonexistent"),
            shell: PathBuf::from("/usr/sbin/nologin"),
            comment: comment.to_owned(),
        },
    ]
}

fn dir(path: &str, owner: Owner, mode: u32) -> Step {
    Step::Dir {
        path: PathBuf::from(path),
        owner,
        mode,
    }
}

fn keys(label: &str, user: &str) -> [Step; 2] {
    let key_dir = format!("/var/lib/orchestrate/keys/{label}");
    [
        dir(&key_dir, Owner::root(), 0o711),
        Step::KeyPair {
            label: label.to_owned(),
            dir: PathBuf::from(key_dir),
            owner: Owner::same(user),
        },
    ]
}

#[test]
fn plan_orders_accounts_before_dirs_before_keys_with_exact_owners_and_modes() {
    let got = plan(&spec(&[("codegen", "orch-codegen")])).unwrap();
    let mut steps = Vec::new();
    steps.extend(account("orch-codegen", "orchestrate role codegen"));
    steps.extend(account("orch-gate", "orchestrate promotion gate"));
    steps.extend(account("orch-run", "orchestrate orchestrator"));
    steps.push(dir("/var/lib/orchestrate", Owner::root(), 0o751));
    steps.push(dir(
        "/var/lib/orchestrate/runs",
        Owner {
            user: "orch-run".to_owned(),
            group: "orch-gate".to_owned(),
        },
        0o750,
    ));
    steps.push(dir(
        "/var/lib/orchestrate/integration.git",
        Owner::same("orch-gate"),
        0o755,
    ));
    steps.push(dir("/var/lib/orchestrate/keys", Owner::root(), 0o751));
    steps.extend(keys("codegen", "orch-codegen"));
    steps.extend(keys("gate", "orch-gate"));
    steps.extend(keys("orchestrator", "orch-run"));
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        steps.push(Step::RestrictIfPresent {
            path: PathBuf::from(format!("/var/lib/orchestrate/{name}")),
            mode: 0o600,
        });
    }
    assert_eq!(
        got,
        SetupPlan {
            state_dir: PathBuf::from("/var/lib/orchestrate"),
            steps
        }
    );
}

#[test]
fn plan_of_the_default_roles_creates_eight_users_and_eight_key_pairs() {
    let got = plan(&spec(&[
        ("planner", "orch-planner"),
        ("codegen", "orch-codegen"),
        ("security-review", "orch-review"),
        ("test-runner", "orch-test"),
        ("cost-control", "orch-cost"),
        ("progress-evaluator", "orch-progress"),
    ]))
    .unwrap();
    assert_eq!(
        got.users(),
        vec![
            "orch-planner",
            "orch-codegen",
            "orch-review",
            "orch-test",
            "orch-cost",
            "orch-progress",
            "orch-gate",
            "orch-run"
        ]
    );
    assert_eq!(got.groups(), got.users());
    let labels: Vec<&str> = got
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::KeyPair { label, .. } => Some(label.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            "planner",
            "codegen",
            "security-review",
            "test-runner",
            "cost-control",
            "progress-evaluator",
            "gate",
            "orchestrator"
        ]
    );
}

#[test]
fn dry_run_text_is_the_commands_and_modes() {
    let got = plan(&spec(&[])).unwrap();
    let text = got.to_string();
    let expected = "\
groupadd --system orch-gate
useradd --system --gid orch-gate --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment 'orchestrate promotion gate' orch-gate
groupadd --system orch-run
useradd --system --gid orch-run --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment 'orchestrate orchestrator' orch-run
mkdir /var/lib/orchestrate (owner root:root, mode 0751)
mkdir /var/lib/orchestrate/runs (owner orch-run:orch-gate, mode 0750)
mkdir /var/lib/orchestrate/integration.git (owner orch-gate:orch-gate, mode 0755)
mkdir /var/lib/orchestrate/keys (owner root:root, mode 0751)
mkdir /var/lib/orchestrate/keys/gate (owner root:root, mode 0711)
keygen ed25519 for gate: /var/lib/orchestrate/keys/gate/ed25519.key (owner orch-gate:orch-gate, mode 0400) + /var/lib/orchestrate/keys/gate/ed25519.pub (owner root:root, mode 0444); kept if present
mkdir /var/lib/orchestrate/keys/orchestrator (owner root:root, mode 0711)
keygen ed25519 for orchestrator: /var/lib/orchestrate/keys/orchestrator/ed25519.key (owner orch-run:orch-run, mode 0400) + /var/lib/orchestrate/keys/orchestrator/ed25519.pub (owner root:root, mode 0444); kept if present
chmod 0600 /var/lib/orchestrate/state.db (if present; created by the orchestrator)
chmod 0600 /var/lib/orchestrate/state.db-wal (if present; created by the orchestrator)
chmod 0600 /var/lib/orchestrate/state.db-shm (if present; created by the orchestrator)
";
    assert_eq!(text, expected);
}

#[test]
fn plan_refuses_bad_names_duplicates_and_relative_state_dirs() {
    let err = |s: SetupSpec| plan(&s).unwrap_err().to_string();
    assert_eq!(
        err(spec(&[("codegen", "Orch")])),
        "invalid user name \"Orch\": want [a-z_][a-z0-9_-]*, at most 32 bytes, not root"
    );
    assert_eq!(
        err(spec(&[("codegen", "root")])),
        "invalid user name \"root\": want [a-z_][a-z0-9_-]*, at most 32 bytes, not root"
    );
    assert_eq!(
        err(spec(&[("codegen", &"a".repeat(33))])),
        format!(
            "invalid user name {:?}: want [a-z_][a-z0-9_-]*, at most 32 bytes, not root",
            "a".repeat(33)
        )
    );
    assert_eq!(
        err(spec(&[("../x", "orch-x")])),
        "invalid principal label \"../x\": want [a-z0-9_-]+"
    );
    assert_eq!(
        err(spec(&[("a", "orch-x"), ("b", "orch-x")])),
        "user \"orch-x\" is given to more than one role"
    );
    assert_eq!(
        err(spec(&[("gate", "orch-x")])),
        "label \"gate\" appears more than once"
    );
    assert_eq!(
        err(spec(&[("codegen", "orch-gate")])),
        "user \"orch-gate\" is given to more than one role"
    );
    let mut bad_db = spec(&[]);
    bad_db.db_file = "../state.db".to_owned();
    assert_eq!(
        err(bad_db),
        "database file name \"../state.db\" is not a plain file name"
    );
    let mut relative = spec(&[]);
    relative.state_dir = PathBuf::from("state");
    assert_eq!(
        err(relative),
        "state directory \"state\" is not an absolute path"
    );
}

#[test]
fn removal_plan_deletes_keys_then_accounts_and_keeps_state_unless_purged() {
    let p = plan(&spec(&[("codegen", "orch-codegen")])).unwrap();
    assert_eq!(
        removal_plan(&p, RemoveOptions { purge: false }),
        vec![
            "rm /var/lib/orchestrate/bin/orchestrate-gate (the set-id gate, before its user goes)",
            "rm -r /var/lib/orchestrate/keys",
            "userdel orch-run (only if its uid is a system uid)",
            "userdel orch-gate (only if its uid is a system uid)",
            "userdel orch-codegen (only if its uid is a system uid)",
            "groupdel orch-run (only if its gid is a system gid)",
            "groupdel orch-gate (only if its gid is a system gid)",
            "groupdel orch-codegen (only if its gid is a system gid)",
            "keep /var/lib/orchestrate (database, runs, integration.git; --purge deletes them)",
        ]
    );
    assert_eq!(
        removal_plan(&p, RemoveOptions { purge: true })
            .last()
            .unwrap(),
        "rm -r /var/lib/orchestrate"
    );
}

#[test]
fn gate_install_is_a_root_dir_then_a_set_id_copy_owned_by_the_gate() {
    let s = spec(&[("codegen", "orch-codegen")]);
    let mut p = plan(&s).unwrap();
    let before = p.steps.len();
    add_gate_binary(&mut p, &s, PathBuf::from("/opt/o/orchestrate-gate"));
    assert_eq!(
        p.steps[before..],
        [
            dir("/var/lib/orchestrate/bin", Owner::root(), 0o755),
            Step::GateBinary {
                source: PathBuf::from("/opt/o/orchestrate-gate"),
                path: PathBuf::from("/var/lib/orchestrate/bin/orchestrate-gate"),
                owner: Owner::same("orch-gate"),
                mode: 0o6755,
            },
        ]
    );
    assert_eq!(
        p.steps[before + 1].to_string(),
        "install /opt/o/orchestrate-gate as /var/lib/orchestrate/bin/orchestrate-gate (owner \
         orch-gate:orch-gate, mode 6755: set-uid and set-gid, so the gate runs as its own user \
         whoever calls it)"
    );
}
