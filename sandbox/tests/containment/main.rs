//! Adversarial containment tests (root). Each attack runs outside first (the positive control),
//! then inside with every layer on, asserting the exact errno; then again with the layers that
//! stop it switched off one at a time, each step asserting the next layer's own errno, until the
//! attack succeeds with all of them off: proof that every layer on the ladder holds by itself and
//! that the test can fail.

mod support;

use std::os::unix::fs::PermissionsExt;

use orchestrate_sandbox::plan::Layer::{self, *};
use support::*;

/// One rung: the layers switched off and the answer the probe must print.
type Rung<'a> = (&'a [Layer], &'a str);

/// Runs every rung and reports every mismatch at once.
fn ladder(
    fx: &Fixture,
    role: &orchestrate_sandbox::exec::RoleSpec,
    id: orchestrate_sandbox::plan::Identity,
    argv: &[&str],
    rungs: &[Rung<'_>],
) {
    let mut bad = Vec::new();
    for (off, want) in rungs {
        let r = run(fx, role, Some(id), off, argv);
        let got = r.answer().to_owned();
        if got != *want {
            bad.push(format!(
                "layers off {off:?}: want {want}, got {got} ({})",
                r.stderr.trim()
            ));
        }
    }
    assert!(bad.is_empty(), "{argv:?}:\n{}", bad.join("\n"));
}

struct Case {
    users: Users,
    fx: Fixture,
}

impl Case {
    fn new(tag: &str) -> Case {
        Case {
            users: Users::create(tag, &["cg", "pl"]),
            fx: Fixture::new(),
        }
    }

    fn codegen(&self) -> orchestrate_sandbox::exec::RoleSpec {
        role("codegen", self.users.name(0), true)
    }

    fn reviewer(&self) -> orchestrate_sandbox::exec::RoleSpec {
        role("security-review", self.users.name(1), false)
    }

    fn id(&self) -> orchestrate_sandbox::plan::Identity {
        self.users.id(0)
    }
}

#[test]
fn full_containment_runs_as_the_role_user_with_every_layer_applied() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("a");
    let r = run(&c.fx, &c.codegen(), Some(c.id()), &[], &[&c.fx.probe, "id"]);
    assert_eq!(r.answer(), format!("{}:{}", c.id().uid, c.id().gid));
    assert!(r.report.weaker().is_empty(), "{:?}", r.report);
    assert_eq!(r.report.layers.len(), Layer::ALL.len());
}

#[test]
fn writes_outside_the_volume_are_denied_by_mount_landlock_and_identity_each() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("b");
    let dir = c.fx.path("outside");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = dir.join("f").to_string_lossy().into_owned();
    assert_eq!(outside(&c.fx, None, &["write", &target]), "OK");
    std::fs::remove_file(&target).unwrap();
    let argv = [c.fx.probe.as_str(), "write", &target];
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &argv,
        &[
            (&[], "ENOENT"),
            (&[Mount], "EACCES"),
            (&[Mount, Landlock], "EACCES"),
            (&[Mount, Landlock, Identity], "OK"),
        ],
    );
}

#[test]
fn etc_shadow_and_root_home_are_unreadable() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("c");
    for path in ["/etc/shadow", "/root/.bashrc"] {
        if !std::path::Path::new(path).exists() {
            eprintln!("SKIP part: {path} does not exist here");
            continue;
        }
        assert_eq!(outside(&c.fx, None, &["read", path]), "OK");
        let argv = [c.fx.probe.as_str(), "read", path];
        ladder(
            &c.fx,
            &c.codegen(),
            c.id(),
            &argv,
            &[
                (&[], "ENOENT"),
                (&[Mount], "EACCES"),
                (&[Mount, Landlock], "EACCES"),
                (&[Mount, Landlock, Identity], "OK"),
            ],
        );
    }
}

#[test]
fn another_roles_private_key_is_unreadable() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("d");
    let keydir = c.fx.path("keys/planner");
    std::fs::create_dir_all(&keydir).unwrap();
    for d in [c.fx.path("keys"), keydir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let key = keydir.join("ed25519.key");
    std::fs::write(&key, "secret").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let planner = c.users.id(1);
    std::os::unix::fs::chown(&key, Some(planner.uid), Some(planner.gid)).unwrap();
    let key = key.to_string_lossy().into_owned();
    // Positive control: its owner reads it; codegen's uid does not, even outside.
    assert_eq!(outside(&c.fx, Some(planner), &["read", &key]), "OK");
    assert_eq!(outside(&c.fx, Some(c.id()), &["read", &key]), "EACCES");
    let argv = [c.fx.probe.as_str(), "read", &key];
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &argv,
        &[
            (&[], "ENOENT"),
            (&[Mount], "EACCES"),
            (&[Mount, Landlock], "EACCES"),
            (&[Mount, Landlock, Identity], "OK"),
        ],
    );
}

#[test]
fn dotdot_traversal_out_of_the_repo_is_contained() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("e");
    let repo = c.fx.repo.to_string_lossy().into_owned();
    let up = format!("{repo}/../../../../etc/shadow");
    assert_eq!(outside(&c.fx, None, &["read", &up]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "read", &up],
        &[
            (&[], "ENOENT"),
            (&[Mount], "EACCES"),
            (&[Mount, Landlock], "EACCES"),
            (&[Mount, Landlock, Identity], "OK"),
        ],
    );
    // Creating a file next to the repo: the new root is a read-only tmpfs there.
    let escape = format!("{repo}/../escape");
    assert_eq!(outside(&c.fx, None, &["write", &escape]), "OK");
    std::fs::remove_file(c.fx.path("escape")).unwrap();
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "write", &escape],
        &[
            (&[], "EROFS"),
            (&[Mount], "EACCES"),
            (&[Mount, Landlock], "EACCES"),
            (&[Mount, Landlock, Identity], "OK"),
        ],
    );
    let _ = std::fs::remove_file(c.fx.path("escape"));
}

#[test]
fn symlinks_in_the_repo_resolve_inside_the_sandbox() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("f");
    // A symlink committed to the repo (so it is in the lower layer) and one planted in the upper
    // layer by an earlier launch, both aimed at the host's /etc/shadow.
    std::os::unix::fs::symlink("/etc/shadow", c.fx.repo.join("evil")).unwrap();
    let st = std::process::Command::new("git")
        .arg("-C")
        .arg(&c.fx.repo)
        .args(["add", "evil"])
        .status()
        .unwrap();
    assert!(st.success());
    let st = std::process::Command::new("git")
        .arg("-C")
        .arg(&c.fx.repo)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "evil",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let evil = c.fx.repo.join("evil").to_string_lossy().into_owned();
    assert_eq!(outside(&c.fx, None, &["read", &evil]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "read", &evil],
        &[
            (&[], "ENOENT"),
            (&[Mount], "EACCES"),
            (&[Mount, Landlock], "EACCES"),
            (&[Mount, Landlock, Identity], "OK"),
        ],
    );
    // Planted in the upper layer (the volume already exists after the launches above).
    std::os::unix::fs::symlink("/etc/shadow", c.fx.volume.join("upper/planted")).unwrap();
    let planted = c.fx.repo.join("planted").to_string_lossy().into_owned();
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "read", &planted],
    );
    assert_eq!(r.answer(), "ENOENT");
}

#[test]
fn hard_links_to_files_outside_are_refused() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("g");
    let repo = c.fx.repo.to_string_lossy().into_owned();
    let link = format!("{repo}/shadow-link");
    assert_eq!(
        outside(&c.fx, None, &["hardlink", "/etc/shadow", &link]),
        "OK"
    );
    std::fs::remove_file(&link).unwrap();
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "hardlink", "/etc/shadow", &link],
        &[
            (&[], "ENOENT"),
            // fs.protected_hardlinks: the role owns neither the file nor any access to it.
            (&[Mount], "EPERM"),
            (&[Mount, Identity], "EXDEV"),
            (&[Mount, Identity, Landlock], "OK"),
        ],
    );
    let _ = std::fs::remove_file(&link);
}

#[test]
fn the_lower_layer_and_the_engineers_repo_never_change() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("h");
    let readme = c.fx.repo.join("README").to_string_lossy().into_owned();
    // codegen edits its view: the change lands in the upper layer only.
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "write", &readme],
    );
    assert_eq!(r.answer(), "OK");
    assert_eq!(
        std::fs::read_to_string(c.fx.volume.join("upper/README")).unwrap(),
        "x"
    );
    assert_eq!(
        std::fs::read_to_string(c.fx.volume.join("lower/README")).unwrap(),
        "base\n"
    );
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), "base\n");
    // The lower layer's host path is not even visible.
    let lower =
        c.fx.volume
            .join("lower/README")
            .to_string_lossy()
            .into_owned();
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "write", &lower],
    );
    assert_eq!(r.answer(), "ENOENT");
    // A reader cannot change the tree at all.
    let rev = c.reviewer();
    let rid = c.users.id(1);
    assert_eq!(outside(&c.fx, None, &["write", &readme]), "OK");
    std::fs::write(&readme, "base\n").unwrap();
    let mut bad = Vec::new();
    for (off, want) in [
        (&[][..], "EROFS"),
        (&[Mount][..], "EACCES"),
        (&[Mount, Landlock][..], "EACCES"),
        (&[Mount, Landlock, Identity][..], "OK"),
    ] {
        let got = run(
            &c.fx,
            &rev,
            Some(rid),
            off,
            &[&c.fx.probe, "write", &readme],
        )
        .answer()
        .to_owned();
        if got != want {
            bad.push(format!("{off:?}: want {want} got {got}"));
        }
    }
    std::fs::write(&readme, "base\n").unwrap();
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn network_reaches_neither_the_internet_nor_the_hosts_loopback() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("i");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accept = std::thread::spawn(move || {
        // Accept whatever connects (the controls and the layer-off rungs) until the test ends.
        for s in listener.incoming() {
            drop(s);
        }
    });
    assert_eq!(outside(&c.fx, None, &["connect", &addr]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "connect", &addr],
        &[
            // Landlock answers first; without it the namespace's own empty loopback refuses.
            (&[], "EACCES"),
            (&[Landlock], "ECONNREFUSED"),
            (&[Network], "EACCES"),
            (&[Network, Landlock], "OK"),
        ],
    );
    let internet = "1.1.1.1:80";
    let control = outside(&c.fx, None, &["connect", internet]);
    if control != "OK" {
        eprintln!("SKIP part: {internet} unreachable from the host itself ({control})");
    } else {
        ladder(
            &c.fx,
            &c.codegen(),
            c.id(),
            &[&c.fx.probe, "connect", internet],
            &[
                (&[], "EACCES"),
                (&[Landlock], "ENETUNREACH"),
                (&[Network], "EACCES"),
                (&[Network, Landlock], "OK"),
            ],
        );
    }
    drop(accept);
}

#[test]
fn host_processes_are_invisible_and_unsignalable() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("j");
    let me = std::process::id().to_string();
    assert_eq!(outside(&c.fx, None, &["kill", &me]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "kill", &me],
        &[
            (&[], "ESRCH"),
            (&[Pid], "EPERM"),
            (&[Pid, Landlock], "EPERM"),
            (&[Pid, Landlock, Identity], "OK"),
        ],
    );
    // Only the sandbox's init and the probe itself are in /proc.
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "pids"],
    );
    assert_eq!(r.answer(), "1,2");
}

#[test]
fn ptrace_mount_unshare_and_clone3_are_filtered() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("k");
    assert_eq!(outside(&c.fx, None, &["ptrace"]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "ptrace"],
        &[(&[], "EPERM"), (&[Seccomp], "OK")],
    );
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "mount", "/tmp"],
        &[
            (&[], "EPERM"),
            // Without seccomp: no CAP_SYS_ADMIN as the role's uid; as root, Landlock forbids
            // mounting; then root inside its own mount namespace may (never with the mount layer
            // off: that would be the host's).
            (&[Seccomp], "EPERM"),
            (&[Seccomp, Identity], "EPERM"),
            (&[Seccomp, Identity, Landlock], "OK"),
        ],
    );
    assert_eq!(outside(&c.fx, Some(c.id()), &["unshare"]), "OK");
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "unshare"],
        &[(&[], "EPERM"), (&[Seccomp], "OK")],
    );
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "clone3"],
        &[(&[], "ENOSYS"), (&[Seccomp], "EINVAL")],
    );
}

#[test]
fn a_fork_bomb_is_bounded_by_the_pids_cgroup() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("l");
    // The role's pids limit is 32; the bomb wants 100 children.
    assert_eq!(outside(&c.fx, None, &["forkbomb", "100"]), "OK after 100");
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "forkbomb", "100"],
    );
    let got = r.answer().to_owned();
    let n: usize = got
        .strip_prefix("EAGAIN after ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(n < 32, "{got}");
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[Cgroups],
        &[&c.fx.probe, "forkbomb", "100"],
    );
    assert_eq!(r.answer(), "OK after 100");
}

#[test]
fn a_file_past_fsize_fails_with_efbig() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("m");
    let big = c.fx.path("big").to_string_lossy().into_owned();
    assert_eq!(outside(&c.fx, None, &["fsize", &big, "2097152"]), "OK");
    // fsize_mb is 1 for the test role; /tmp is the role's private one.
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[&c.fx.probe, "fsize", "/tmp/big", "2097152"],
        &[(&[], "EFBIG"), (&[Rlimits], "OK")],
    );
}

#[test]
fn the_run_engine_api_passes_the_frame_socket_as_fd_3_and_kills_the_whole_launch() {
    if skip_unless_root() {
        return;
    }
    use std::io::Read;
    use std::os::fd::AsFd;
    let c = Case::new("n");
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut role = c.codegen();
    role.limits.wall_seconds = 60;
    let spawn = |argv: &[&str]| {
        let req = request(
            &c.fx,
            &role,
            Some(c.id()),
            &[],
            argv,
            vec![3],
            vec![("ORCHESTRATE_FRAME_FD".to_owned(), "3".to_owned())],
        );
        let (plan, _) = orchestrate_sandbox::exec::prepare(&req).unwrap();
        orchestrate_sandbox::linux::launch::spawn(
            &launcher(),
            &plan,
            orchestrate_sandbox::linux::launch::Stdio3::piped(),
            &[theirs.as_fd()],
        )
        .unwrap()
    };
    // fd 3 inside is our socket's peer, and the env says so.
    let mut running = spawn(&[&c.fx.probe, "fd-write", "3", "frame"]);
    let mut out = String::new();
    running
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let report = running.wait().unwrap();
    assert_eq!(out.trim(), "OK", "{report:?}");
    let mut buf = [0u8; 5];
    ours.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"frame");
    let r = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[&c.fx.probe, "fd-write", "3", "x"],
    );
    assert_eq!(r.answer(), "EBADF", "without pass_fds there is no fd 3");
    // kill_all ends a long command at once, and the report says it was killed.
    let running = spawn(&[&c.fx.probe, "sleep", "60"]);
    assert!(running.pid() > 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    running.kill_all().unwrap();
    let report = running.wait().unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        report.exit,
        Some(orchestrate_sandbox::report::Exit::Signal(libc::SIGKILL)),
        "{report:?}"
    );
}

#[test]
fn the_wall_clock_kills_the_whole_launch() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("o");
    let mut role = c.codegen();
    role.limits.wall_seconds = 1;
    let t = std::time::Instant::now();
    let r = run(
        &c.fx,
        &role,
        Some(c.id()),
        &[],
        &[&c.fx.probe, "sleep", "30"],
    );
    assert!(r.report.wall_killed, "{:?}", r.report);
    assert_eq!(r.report.exit_code(), 124);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn the_minimal_dev_works_and_the_role_cannot_make_a_device() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("p");
    // Positive controls outside: root makes a device node; /dev/full is full.
    let node = c.fx.path("node").to_string_lossy().into_owned();
    assert_eq!(outside(&c.fx, None, &["mknod", &node]), "OK");
    assert_eq!(outside(&c.fx, None, &["write", "/dev/full"]), "ENOSPC");
    let probe = c.fx.probe.as_str();
    let inside = |off: &[Layer], argv: &[&str]| {
        run(&c.fx, &c.codegen(), Some(c.id()), off, argv)
            .answer()
            .to_owned()
    };
    // The nodes work (made with mknod as root, so the /dev tmpfs must allow devices)...
    assert_eq!(inside(&[], &[probe, "write", "/dev/null"]), "OK");
    assert_eq!(inside(&[], &[probe, "write", "/dev/full"]), "ENOSPC");
    assert_eq!(inside(&[], &[probe, "read", "/dev/urandom"]), "OK");
    // ...and are all there is (Landlock off, or it would refuse to list /dev at all).
    assert_eq!(inside(&[], &[probe, "devices", "/dev"]), "EACCES");
    assert_eq!(
        inside(&[Landlock], &[probe, "devices", "/dev"]),
        "fd,full,null,random,shm,stderr,stdin,stdout,urandom,zero"
    );
    let host = inside(&[Landlock, Mount], &[probe, "devices", "/dev"]);
    assert!(
        host.contains("tty"),
        "with the mount layer off: the host's /dev ({host})"
    );
    // The role cannot add a device, even in the writable /dev/shm.
    ladder(
        &c.fx,
        &c.codegen(),
        c.id(),
        &[probe, "mknod", "/dev/shm/n"],
        &[(&[], "EPERM"), (&[Identity], "OK")],
    );
}

#[test]
fn the_writable_repo_is_a_volatile_nosuid_nodev_overlay_on_the_volume() {
    if skip_unless_root() {
        return;
    }
    let c = Case::new("q");
    let repo = c.fx.repo.to_string_lossy().into_owned();
    let probe = c.fx.probe.as_str();
    let got = run(
        &c.fx,
        &c.codegen(),
        Some(c.id()),
        &[],
        &[probe, "mountinfo", &repo],
    )
    .answer()
    .to_owned();
    let mut parts = got.splitn(3, ' ');
    let (fstype, opts, sopts) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    assert_eq!(fstype, "overlay", "{got}");
    let opts: Vec<&str> = opts.split(',').collect();
    for want in ["rw", "nosuid", "nodev"] {
        assert!(opts.contains(&want), "mount options lack {want}: {got}");
    }
    let vol = c.fx.volume.to_string_lossy().into_owned();
    assert!(sopts.contains(&format!("upperdir={vol}/upper")), "{got}");
    assert!(sopts.contains(&format!("workdir={vol}/work/")), "{got}");
    assert!(sopts.contains("volatile"), "{got}");
    // A reader's view of the same repo is read-only.
    let got = run(
        &c.fx,
        &c.reviewer(),
        Some(c.users.id(1)),
        &[],
        &[probe, "mountinfo", &repo],
    )
    .answer()
    .to_owned();
    assert!(got.starts_with("overlay ro,"), "{got}");
}
