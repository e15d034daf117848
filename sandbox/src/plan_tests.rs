use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn codegen() -> PolicyInput {
    PolicyInput {
        role: "codegen".to_owned(),
        identity: Some(Identity { uid: 990, gid: 990 }),
        read: vec![p("/src/repo"), p("/opt/rust")],
        write: vec![p("/src/repo"), p("/v/scratch/codegen")],
        system_read: vec![p("/usr"), p("/lib")],
        network: Network::None,
        limits: Limits {
            cpu_seconds: 600,
            memory_mb: 2048,
            pids: 256,
            wall_seconds: 900,
            nofile: 1024,
            fsize_mb: 64,
        },
        env: vec![
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ],
        require: Layer::ALL.into_iter().collect(),
        enabled: Layer::ALL.into_iter().collect(),
        allow_weaker: false,
        repo: Some(RepoView {
            path: p("/src/repo"),
            lower: p("/v/lower"),
            upper: p("/v/upper"),
            work: p("/v/work"),
        }),
        home: p("/v/home/codegen"),
        tmp: p("/v/tmp/codegen"),
        cwd: p("/src/repo"),
        argv: vec!["/bin/true".to_owned()],
        path_prepend: vec![p("/opt/rust/bin")],
        pass_fds: vec![3],
    }
}

fn host() -> HostPaths {
    HostPaths {
        jail_root: p("/v/root"),
        cgroup: CgroupHost::V1 {
            memory: p("/cg/memory"),
            pids: p("/cg/pids"),
        },
        launch_id: "L1".to_owned(),
        unprivileged: false,
    }
}

#[test]
fn codegen_writes_its_repo_through_a_volatile_overlay_with_work_dirs_on_the_volume() {
    let plan = Plan::build(&codegen(), &host()).unwrap();
    let root = plan.new_root.unwrap();
    assert_eq!(root.mountpoint, p("/v/root"));
    assert_eq!(
        root.ops,
        vec![
            MountOp::Tmpfs {
                target: p("/"),
                mode: 0o755
            },
            MountOp::Bind {
                src: p("/usr"),
                target: p("/usr"),
                writable: false,
                optional: true
            },
            MountOp::Bind {
                src: p("/lib"),
                target: p("/lib"),
                writable: false,
                optional: true
            },
            MountOp::Bind {
                src: p("/opt/rust"),
                target: p("/opt/rust"),
                writable: false,
                optional: false
            },
            MountOp::Overlay {
                target: p("/src/repo"),
                lower: vec![p("/v/lower")],
                upper: Some((p("/v/upper"), p("/v/work"))),
            },
            MountOp::Bind {
                src: p("/v/scratch/codegen"),
                target: p("/v/scratch/codegen"),
                writable: true,
                optional: false,
            },
            MountOp::Bind {
                src: p("/v/home/codegen"),
                target: p("/v/home/codegen"),
                writable: true,
                optional: false
            },
            MountOp::Bind {
                src: p("/v/tmp/codegen"),
                target: p("/tmp"),
                writable: true,
                optional: false
            },
            MountOp::Proc { target: p("/proc") },
            MountOp::DevTmpfs {
                target: p("/dev"),
                nodes: ["null", "zero", "full", "random", "urandom"]
                    .map(|n| p("/dev").join(n))
                    .to_vec()
            },
            MountOp::Tmpfs {
                target: p("/dev/shm"),
                mode: 0o1777
            },
            MountOp::Symlink {
                link: p("/dev/fd"),
                points_to: p("/proc/self/fd")
            },
            MountOp::Symlink {
                link: p("/dev/stdin"),
                points_to: p("/proc/self/fd/0")
            },
            MountOp::Symlink {
                link: p("/dev/stdout"),
                points_to: p("/proc/self/fd/1")
            },
            MountOp::Symlink {
                link: p("/dev/stderr"),
                points_to: p("/proc/self/fd/2")
            },
            MountOp::RootReadOnly,
        ]
    );
}

#[test]
fn every_layer_on_gives_the_full_plan() {
    let plan = Plan::build(&codegen(), &host()).unwrap();
    assert_eq!(
        plan.namespaces,
        Namespaces {
            user: false,
            mount: true,
            pid: true,
            ipc: true,
            uts: true,
            net: true
        }
    );
    assert_eq!(plan.identity, Some(Identity { uid: 990, gid: 990 }));
    assert_eq!(
        plan.landlock,
        Some(LandlockRules {
            read_only: vec![
                p("/usr"),
                p("/lib"),
                p("/opt/rust"),
                p("/proc"),
                p("/dev/random"),
                p("/dev/urandom")
            ],
            read_write: vec![
                p("/src/repo"),
                p("/v/scratch/codegen"),
                p("/v/home/codegen"),
                p("/tmp"),
                p("/dev/null"),
                p("/dev/zero"),
                p("/dev/full"),
                p("/dev/shm"),
            ],
            deny_tcp: true,
            tcp_ports: vec![],
        })
    );
    assert_eq!(
        plan.seccomp,
        Some(SeccompPlan {
            eperm: SECCOMP_EPERM.iter().map(|s| (*s).to_owned()).collect(),
            deny_clone_namespaces: true,
            enosys: vec!["clone3".to_owned()],
        })
    );
    // AS and NPROC stay generous (JIT runtimes, per-uid counting); cgroups are the real bound.
    assert_eq!(
        plan.rlimits,
        Some(vec![
            Rlimit::Cpu(600),
            Rlimit::As(64 * 1024 * MIB),
            Rlimit::Nproc(4096),
            Rlimit::Fsize(64 * MIB),
            Rlimit::Nofile(1024),
            Rlimit::Core(0),
        ])
    );
    assert_eq!(
        plan.cgroup,
        Some(CgroupPlan {
            create: vec![
                p("/cg/memory/orchestrate"),
                p("/cg/memory/orchestrate/L1"),
                p("/cg/pids/orchestrate"),
                p("/cg/pids/orchestrate/L1")
            ],
            writes: vec![
                (
                    p("/cg/memory/orchestrate/L1/memory.limit_in_bytes"),
                    (2048 * MIB).to_string()
                ),
                (
                    p("/cg/memory/orchestrate/L1/memory.swappiness"),
                    "0".to_owned()
                ),
                (p("/cg/pids/orchestrate/L1/pids.max"), "256".to_owned()),
            ],
            join: vec![
                p("/cg/memory/orchestrate/L1/cgroup.procs"),
                p("/cg/pids/orchestrate/L1/cgroup.procs")
            ],
            remove: vec![p("/cg/memory/orchestrate/L1"), p("/cg/pids/orchestrate/L1")],
        })
    );
    let env = plan.env.unwrap();
    // The allowlist never overrides what the sandbox sets (HOME stays the throwaway one).
    assert!(env.contains(&("HOME".to_owned(), "/v/home/codegen".to_owned())));
    assert!(env.contains(&("LANG".to_owned(), "C.UTF-8".to_owned())));
    assert!(env.contains(&(
        "PATH".to_owned(),
        "/opt/rust/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".to_owned()
    )));
    assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
    assert!(plan.switched_off.is_empty());
    assert_eq!(plan.pass_fds, vec![3]);
}

#[test]
fn cgroup_v2_enables_the_controllers_and_limits_one_leaf() {
    let l = codegen().limits;
    assert_eq!(
        cgroup_plan(&CgroupHost::V2 { root: p("/cg") }, "L2", &l),
        Some(CgroupPlan {
            create: vec![p("/cg/orchestrate"), p("/cg/orchestrate/L2")],
            writes: vec![
                (p("/cg/cgroup.subtree_control"), "+memory +pids".to_owned()),
                (
                    p("/cg/orchestrate/cgroup.subtree_control"),
                    "+memory +pids".to_owned()
                ),
                (p("/cg/orchestrate/L2/memory.max"), (2048 * MIB).to_string()),
                (p("/cg/orchestrate/L2/memory.swap.max"), "0".to_owned()),
                (p("/cg/orchestrate/L2/pids.max"), "256".to_owned()),
            ],
            join: vec![p("/cg/orchestrate/L2/cgroup.procs")],
            remove: vec![p("/cg/orchestrate/L2")],
        })
    );
    assert_eq!(cgroup_plan(&CgroupHost::None, "L", &l), None);
}

#[test]
fn a_required_layer_switched_off_fails_closed_unless_allow_weaker() {
    let mut input = codegen();
    input.enabled.remove(&Layer::Seccomp);
    assert_eq!(
        Plan::build(&input, &host()),
        Err(PlanError::RequiredLayerOff { layer: "seccomp" })
    );
    input.allow_weaker = true;
    let plan = Plan::build(&input, &host()).unwrap();
    assert_eq!(plan.seccomp, None);
    assert_eq!(plan.switched_off, vec![Layer::Seccomp]);
}

#[test]
fn a_reader_sees_upper_over_lower_read_only() {
    let mut input = codegen();
    input.write = vec![];
    let plan = Plan::build(&input, &host()).unwrap();
    let ops = plan.new_root.unwrap().ops;
    assert!(ops.contains(&MountOp::Overlay {
        target: p("/src/repo"),
        lower: vec![p("/v/upper"), p("/v/lower")],
        upper: None
    }));
}

#[test]
fn bad_inputs_are_refused() {
    let mut input = codegen();
    input.home = p("/tmp/home");
    assert_eq!(
        Plan::build(&input, &host()),
        Err(PlanError::UnderTmp {
            field: "home",
            path: p("/tmp/home")
        })
    );
    let mut input = codegen();
    input.read.push(p("relative"));
    assert_eq!(
        Plan::build(&input, &host()),
        Err(PlanError::RelativePath {
            field: "read",
            path: p("relative")
        })
    );
    let mut input = codegen();
    input.write.push(p("/v/scratch/../../etc"));
    assert!(matches!(
        Plan::build(&input, &host()),
        Err(PlanError::DotDot { .. })
    ));
    let mut input = codegen();
    input.pass_fds = vec![1];
    assert_eq!(Plan::build(&input, &host()), Err(PlanError::BadFd(1)));
    let mut input = codegen();
    input.argv.clear();
    assert_eq!(Plan::build(&input, &host()), Err(PlanError::EmptyArgv));
    let mut input = codegen();
    input.enabled = BTreeSet::new();
    input.allow_weaker = true;
    let mut h = host();
    h.unprivileged = true;
    let plan = Plan::build(&input, &h).unwrap();
    assert_eq!(plan.switched_off, Layer::ALL.to_vec());
    assert_eq!(plan.new_root, None);
}
