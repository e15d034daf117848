use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::plan::{Limits, Network, PolicyInput};
use crate::setup::{plan as setup_plan, SetupSpec};

fn policy(network: Network) -> PolicyInput {
    PolicyInput {
        role: "codegen".to_owned(),
        identity: None,
        read: vec![PathBuf::from("/work/repo"), PathBuf::from("/opt/rust")],
        write: vec![
            PathBuf::from("/work/repo"),
            PathBuf::from("/tmp/vol/scratch/codegen"),
        ],
        system_read: vec![PathBuf::from("/usr"), PathBuf::from("/bin")],
        network,
        limits: Limits {
            cpu_seconds: 1,
            memory_mb: 1,
            pids: 1,
            wall_seconds: 1,
            nofile: 1,
            fsize_mb: 1,
        },
        env: Vec::new(),
        require: BTreeSet::new(),
        enabled: BTreeSet::new(),
        allow_weaker: false,
        repo: None,
        home: PathBuf::from("/tmp/vol/home/codegen"),
        tmp: PathBuf::from("/tmp/vol/tmp/codegen"),
        cwd: PathBuf::from("/work/repo"),
        argv: vec!["/bin/true".to_owned()],
        path_prepend: Vec::new(),
        pass_fds: Vec::new(),
    }
}

const COMMON: &str = r#"(version 1)
;; orchestrate role codegen: generated from roles.yaml; do not edit.
(deny default)
;; processes: run and fork; signal and inspect only inside this sandbox
(allow process-exec process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow sysctl-read)
(allow ipc-posix-shm)
(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo"))
;; devices every program expects
(allow file-read* file-write-data (literal "/dev/null") (literal "/dev/zero"))
(allow file-read* (literal "/dev/random") (literal "/dev/urandom"))
(allow file-read-metadata
    (literal "/")
    (literal "/opt")
    (literal "/private")
    (literal "/private/tmp")
    (literal "/private/tmp/vol")
    (literal "/private/tmp/vol/home")
    (literal "/private/tmp/vol/scratch")
    (literal "/private/tmp/vol/tmp")
    (literal "/work"))
;; read: system_read and read
(allow file-read*
    (subpath "/bin")
    (subpath "/opt/rust")
    (subpath "/usr"))
;; write: write, HOME, tmp
(allow file-read* file-write*
    (subpath "/private/tmp/vol/home/codegen")
    (subpath "/private/tmp/vol/scratch/codegen")
    (subpath "/private/tmp/vol/tmp/codegen")
    (subpath "/work/repo"))
"#;

#[test]
fn seatbelt_profile_denies_by_default_and_allows_exactly_the_policy_paths_and_no_network() {
    let got = profile(&policy(Network::None)).unwrap();
    assert_eq!(got, format!("{COMMON};; network: none\n"));
    assert!(!got.contains("network-outbound"));
}

#[test]
fn seatbelt_profile_with_gateway_allows_only_a_connect_to_the_gateway_socket() {
    let got = profile(&policy(Network::Gateway {
        socket: PathBuf::from("/var/run/orchestrate/gw.sock"),
    }))
    .unwrap();
    assert_eq!(
        got,
        format!(
            "{COMMON};; network: the gateway's unix socket only\n\
             (allow network-outbound (remote unix-socket (path-literal \"/private/var/run/orchestrate/gw.sock\")))\n\
             (allow file-read* file-write-data (literal \"/private/var/run/orchestrate/gw.sock\"))\n"
        )
    );
}

#[test]
fn seatbelt_profile_refuses_paths_that_could_break_out_of_a_string() {
    let mut p = policy(Network::None);
    p.read.push(PathBuf::from("/x\")) (allow default"));
    assert_eq!(
        profile(&p).unwrap_err(),
        MacError::BadPath(PathBuf::from("/x\")) (allow default"))
    );
    let mut p = policy(Network::None);
    p.write.push(PathBuf::from("relative"));
    assert_eq!(
        profile(&p).unwrap_err(),
        MacError::BadPath(PathBuf::from("relative"))
    );
}

fn small_plan() -> crate::setup::SetupPlan {
    setup_plan(&SetupSpec {
        roles: vec![("codegen".to_owned(), "orch-codegen".to_owned())],
        gate_user: "orch-gate".to_owned(),
        orchestrator_user: "orch-run".to_owned(),
        state_dir: PathBuf::from("/var/lib/orchestrate"),
        db_file: "state.db".to_owned(),
    })
    .unwrap()
}

#[test]
fn dscl_plan_gives_hidden_ids_skips_taken_ones_and_existing_accounts() {
    let existing: BTreeSet<String> = ["orch-gate".to_owned()].into();
    let taken: BTreeSet<u32> = [300, 301, 303].into();
    let (accounts, cmds) = account_plan(&small_plan(), &existing, &taken).unwrap();
    assert_eq!(
        accounts,
        vec![
            MacAccount {
                name: "orch-codegen".to_owned(),
                id: 302,
                comment: "orchestrate role codegen".to_owned()
            },
            MacAccount {
                name: "orch-run".to_owned(),
                id: 304,
                comment: "orchestrate orchestrator".to_owned()
            },
        ]
    );
    let text: Vec<String> = cmds.iter().take(12).map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "/usr/bin/dscl . -create /Groups/orch-codegen",
            "/usr/bin/dscl . -create /Groups/orch-codegen PrimaryGroupID 302",
            "/usr/bin/dscl . -create /Groups/orch-codegen RealName 'orchestrate role codegen'",
            "/usr/bin/dscl . -create /Groups/orch-codegen Password '*'",
            "/usr/bin/dscl . -create /Users/orch-codegen",
            "/usr/bin/dscl . -create /Users/orch-codegen UniqueID 302",
            "/usr/bin/dscl . -create /Users/orch-codegen PrimaryGroupID 302",
            "/usr/bin/dscl . -create /Users/orch-codegen UserShell /usr/bin/false",
            "/usr/bin/dscl . -create /Users/orch-codegen NFSHomeDirectory /var/empty",
            "/usr/bin/dscl . -create /Users/orch-codegen RealName 'orchestrate role codegen'",
            "/usr/bin/dscl . -create /Users/orch-codegen Password '*'",
            "/usr/bin/dscl . -create /Users/orch-codegen IsHidden 1",
        ]
    );
    assert_eq!(cmds.len(), 24);
    assert_eq!(cmds[0].args, vec![".", "-create", "/Groups/orch-codegen"]);
}

#[test]
fn dscl_plan_fails_when_the_hidden_range_is_full_and_removal_deletes_users_then_groups() {
    let taken: BTreeSet<u32> = HIDDEN_ID_RANGE.collect();
    assert_eq!(
        account_plan(&small_plan(), &BTreeSet::new(), &taken).unwrap_err(),
        MacError::NoFreeId {
            name: "orch-codegen".to_owned()
        }
    );
    let text: Vec<String> = account_removal_plan(&small_plan())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        vec![
            "/usr/bin/dscl . -delete /Users/orch-run",
            "/usr/bin/dscl . -delete /Users/orch-gate",
            "/usr/bin/dscl . -delete /Users/orch-codegen",
            "/usr/bin/dscl . -delete /Groups/orch-run",
            "/usr/bin/dscl . -delete /Groups/orch-gate",
            "/usr/bin/dscl . -delete /Groups/orch-codegen",
        ]
    );
}

#[test]
fn hdiutil_plan_makes_a_capped_apfs_sparse_image_mounted_with_owners_on() {
    let got = volume_plan(
        &PathBuf::from("/var/lib/orchestrate/runs/R/volume"),
        &PathBuf::from("/var/lib/orchestrate/runs/R/mnt"),
        "orchestrate-R",
        2048,
        (302, 302),
    )
    .unwrap();
    let lines = |cmds: &[Cmd]| cmds.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        got.image,
        PathBuf::from("/var/lib/orchestrate/runs/R/volume.sparseimage")
    );
    assert_eq!(
        lines(&got.create),
        vec!["/usr/bin/hdiutil create -quiet -size 2048m -fs APFS -type SPARSE -volname orchestrate-R /var/lib/orchestrate/runs/R/volume.sparseimage"]
    );
    assert_eq!(
        lines(&got.attach),
        vec![
            "/usr/bin/hdiutil attach -quiet -nobrowse -noautoopen -owners on -mountpoint /var/lib/orchestrate/runs/R/mnt /var/lib/orchestrate/runs/R/volume.sparseimage",
            "/usr/sbin/chown 302:302 /var/lib/orchestrate/runs/R/mnt",
            "/bin/chmod 0755 /var/lib/orchestrate/runs/R/mnt",
        ]
    );
    assert_eq!(
        lines(&got.kill),
        vec!["/usr/bin/hdiutil detach -force /var/lib/orchestrate/runs/R/mnt"]
    );
    assert_eq!(
        lines(&got.destroy),
        vec![
            "/usr/bin/hdiutil detach -force /var/lib/orchestrate/runs/R/mnt",
            "/bin/rm -f /var/lib/orchestrate/runs/R/volume.sparseimage",
        ]
    );
}

#[test]
fn hdiutil_plan_refuses_zero_sizes_odd_names_and_relative_paths() {
    let p = PathBuf::from("/v/img.sparseimage");
    let m = PathBuf::from("/v/mnt");
    assert_eq!(
        volume_plan(&p, &m, "x", 0, (1, 1)).unwrap_err(),
        MacError::Size(0)
    );
    assert_eq!(
        volume_plan(&p, &m, "a b", 8, (1, 1)).unwrap_err(),
        MacError::VolumeName("a b".to_owned())
    );
    assert_eq!(
        volume_plan(&p, &PathBuf::from("mnt"), "x", 8, (1, 1)).unwrap_err(),
        MacError::BadPath(PathBuf::from("mnt"))
    );
    // An image already named .sparseimage keeps its name.
    assert_eq!(volume_plan(&p, &m, "x", 8, (1, 1)).unwrap().image, p);
}

#[test]
fn commands_display_as_shell_words() {
    assert_eq!(
        Cmd::new("/bin/echo", &["plain", "two words", "it's", ""]).to_string(),
        "/bin/echo plain 'two words' 'it'\\''s' ''"
    );
}
