//! `orchestrate start FR-12` with every role in the sandbox, as `orchestrate setup` prepared it:
//! each role as its own OS user, with every layer roles.yaml requires live, signing with the
//! setup keys, and the gate promoting staging. The recorded session carries hostile probes that
//! codegen attempts for real (read /etc/shadow and another role's private key, write into the
//! engineer's repository and the state directory, connect to 1.1.1.1 and to a listener on the
//! host's loopback): contained, each is denied with its errno and leaves no trace on the host; the
//! twin with every layer switched off (`--allow-weaker --layer-off ...`) sees each succeed, so
//! the test fails when the containment does.
//!
//! Needs root, useradd and every layer on this host (`orchestrate doctor`); skips with the
//! reason otherwise. Users are per-test (`rc<tag>-planner`, ...) and removed by `setup --remove`
//! on drop, even when the test fails.

// Helpers of a test binary: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{bin_dir, copy_dir, example, git, project_roles, text};

/// The tests share host-wide things `orchestrate setup` touches (cgroup parents, the installed
/// gate): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A textkit repository with per-test OS users, `orchestrate setup` done for its own state
/// directory (not under /tmp: a role's private /tmp would hide it).
struct Contained {
    tmp: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
    bins: PathBuf,
}

impl Contained {
    /// One test at a time, with the fixture; `None` (after printing why) when this host cannot
    /// run it.
    fn unless_skipped(tag: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Self)> {
        if let Some(why) = support::contained_skip_reason(&bin_dir(), &[]) {
            eprintln!("SKIP: {why}");
            return None;
        }
        let one = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some((one, Self::new(tag)))
    }

    fn new(tag: &str) -> Self {
        let bins = bin_dir();
        let tmp = tempfile::Builder::new()
            .prefix("orch-run-contained")
            .tempdir_in("/var/tmp")
            .unwrap();
        let repo = tmp.path().join("textkit");
        copy_dir(&example(), &repo);
        let roles = std::fs::read_to_string(project_roles())
            .unwrap()
            .replace("user: orch-", &format!("user: rc{tag}-"));
        std::fs::write(repo.join("roles.yaml"), roles).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let me = Self {
            state: tmp.path().join("state"),
            tmp,
            repo,
            bins,
        };
        let out = me.orchestrate(&["setup"]);
        assert!(out.status.success(), "setup: {}", text(&out));
        me
    }

    fn orchestrate(&self, args: &[&str]) -> Output {
        support::orchestrate(&self.bins, &self.repo, &self.state, args)
    }

    /// The recorded FR-12 session with `probes` attempted first in iteration 1.
    fn session_with(&self, probes: &[(&str, String)]) -> PathBuf {
        let mut s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(example().join("sessions/FR-12.json")).unwrap())
                .unwrap();
        let steps = s["iterations"][0]["steps"].as_array_mut().unwrap();
        for (i, (act, target)) in probes.iter().enumerate() {
            steps.insert(
                i,
                serde_json::json!({"op": "probe", "act": act, "target": target}),
            );
        }
        let path = self.tmp.path().join("hostile-session.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
        path
    }

    fn newest_run_dir(&self) -> PathBuf {
        let out = self.orchestrate(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        self.state
            .join("runs")
            .join(runs[0]["run_id"].as_str().unwrap())
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        let out = self.orchestrate(&["setup", "--remove"]);
        if !out.status.success() {
            eprintln!("setup --remove: {}", text(&out));
        }
    }
}

/// The probes and the host-side traces they would leave.
struct Probes {
    list: Vec<(&'static str, String)>,
    listener: TcpListener,
    traces: Vec<PathBuf>,
}

fn probes(c: &Contained) -> Probes {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let in_repo = c.repo.join("PWNED");
    let in_state = c.state.join("PWNED");
    let key = c.state.join("keys/test-runner/ed25519.key");
    Probes {
        list: vec![
            ("read", "/etc/shadow".into()),
            ("read", key.display().to_string()),
            ("write", in_repo.display().to_string()),
            ("write", in_state.display().to_string()),
            ("connect", "1.1.1.1:53".into()),
            ("connect", listener.local_addr().unwrap().to_string()),
            // Its own key: codegen signs nothing, so the run gives it none to steal.
            (
                "read",
                c.state
                    .join("keys/codegen/ed25519.key")
                    .display()
                    .to_string(),
            ),
        ],
        listener,
        traces: vec![in_repo, in_state],
    }
}

/// Codegen's log line for each probe, in order.
fn outcomes(run_dir: &Path, p: &Probes) -> Vec<String> {
    let log = std::fs::read_to_string(run_dir.join("logs/codegen.log")).unwrap();
    p.list
        .iter()
        .map(|(act, target)| {
            let head = format!("PROBE {act} {target}: ");
            log.lines()
                .find_map(|l| l.find(&head).map(|i| l[i..].to_owned()))
                .unwrap_or_else(|| panic!("no outcome for {head}\n{log}"))
        })
        .collect()
}

fn manifest(run_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn contained_run_denies_every_probe_and_still_reaches_staging_while_its_twin_without_layers_does_not(
) {
    let Some((_one, c)) = Contained::unless_skipped("a") else {
        return;
    };
    let p = probes(&c);
    let session = c.session_with(&p.list);

    // Contained: no --allow-weaker; every required layer must be live or the run refuses.
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("every role in the sandbox"), "{all}");
    assert!(all.contains("staging moved by the gate"), "{all}");
    let run = c.newest_run_dir();
    let m = manifest(&run);
    assert_eq!(m["containment"]["mode"], "sandbox", "{m}");
    assert_eq!(
        m["containment"]["layers_missing"],
        serde_json::json!([]),
        "{m}"
    );
    assert_eq!(m["key_source"], "setup", "{m}");
    let got = outcomes(&run, &p);
    // The mount layer is the first wall for files (none of them is in the role's root, and the
    // state directory is only a read-only stem of it); the
    // Landlock for TCP connections, before routing is even asked (under it the network namespace
    // has no route to 1.1.1.1 and only its own empty loopback).
    let want = [
        "ENOENT", "ENOENT", "ENOENT", "EROFS", "EACCES", "EACCES", "ENOENT",
    ];
    for (line, errno) in got.iter().zip(want) {
        assert!(
            line.contains(&format!("denied ({errno}:")),
            "{line}: expected {errno}"
        );
    }
    for t in &p.traces {
        assert!(
            !t.exists(),
            "{} was written from inside the sandbox",
            t.display()
        );
    }
    assert!(
        p.listener.accept().is_err(),
        "the host's listener was reached"
    );
    // Codegen wrote only to its overlay's upper layer, as its own user; the lower layer (the
    // base it started from) is untouched.
    let vol = run.join("volume");
    let new_file = std::fs::metadata(vol.join("upper/src/slug.rs")).unwrap();
    let codegen_uid = {
        use std::os::unix::fs::MetadataExt;
        new_file.uid()
    };
    assert_ne!(codegen_uid, 0, "codegen's files are root's");
    assert!(
        !vol.join("lower/src/slug.rs").exists(),
        "the lower layer changed"
    );
    assert!(
        !vol.join("upper/README.md").exists(),
        "an unchanged file reached the upper layer"
    );

    // The twin: the same session with every layer switched off reaches everything.
    let mut args = vec![
        "start",
        "FR-12",
        "--allow-weaker",
        "--no-promote",
        "--session",
    ];
    args.push(session.to_str().unwrap());
    for l in support::LAYERS {
        args.extend(["--layer-off", l]);
    }
    let out = c.orchestrate(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = c.newest_run_dir();
    assert_eq!(manifest(&run)["containment"]["mode"], "weaker");
    let got = outcomes(&run, &p);
    for line in &got[..4] {
        assert!(line.ends_with("ALLOWED"), "{line}");
    }
    assert!(got[5].ends_with("ALLOWED"), "{}", got[5]);
    assert!(got[6].ends_with("ALLOWED"), "{}", got[6]);
    for t in &p.traces {
        assert!(
            t.exists(),
            "{} not written without containment",
            t.display()
        );
    }
    assert!(
        p.listener.accept().is_ok(),
        "the twin did not reach the listener"
    );
}

#[test]
fn with_the_mount_layer_off_landlock_and_the_role_user_still_deny_files() {
    let Some((_one, c)) = Contained::unless_skipped("b") else {
        return;
    };
    let p = probes(&c);
    let session = c.session_with(&p.list);
    let out = c.orchestrate(&[
        "start",
        "FR-12",
        "--allow-weaker",
        "--no-promote",
        "--layer-off",
        "mount",
        "--session",
        session.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = c.newest_run_dir();
    let got = outcomes(&run, &p);
    // The files exist on the host now that the role sees the host's tree: the second fence
    // (Landlock, and the role's own uid where it can reach the path) answers EACCES.
    for line in got[..4].iter().chain(&got[6..]) {
        assert!(line.contains("denied (EACCES:"), "{line}");
    }
    for t in &p.traces {
        assert!(!t.exists(), "{} was written", t.display());
    }
}

#[test]
fn a_contained_stop_quarantines_the_upper_layer_and_resume_starts_from_the_checkpoint() {
    let Some((_one, c)) = Contained::unless_skipped("c") else {
        return;
    };
    let session = example().join("sessions/stops/scope-exceeded.json");
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains("STOP_SCOPE_EXCEEDED"), "{all}");
    let run = c.newest_run_dir();
    // What codegen wrote (and only that) is set aside: the upper layer, README.md included.
    let q = run.join("quarantine/work-iteration-1");
    assert!(q.join("README.md").is_file(), "{}", q.display());
    assert!(q.join("src/slug.rs").is_file(), "{}", q.display());
    assert!(
        !q.join("Cargo.toml").exists(),
        "an unchanged file was quarantined"
    );
    let note: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("quarantine/work-iteration-1.json")).unwrap(),
    )
    .unwrap();
    let changed: Vec<&str> = note["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(changed.contains(&"README.md"), "{note}");

    // Resumed, codegen gets a fresh upper layer over the checkpoint (nothing was committed):
    // the recorded session writes README.md again and the run stops the same way.
    let id = run.file_name().unwrap().to_str().unwrap().to_owned();
    let out = c.orchestrate(&[
        "resume",
        &id,
        "--reauthorize",
        "--session",
        session.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("STOP_SCOPE_EXCEEDED"), "{}", text(&out));
    // The second stop sets its work aside beside the first, overwriting nothing.
    assert!(q.join("README.md").is_file());
    assert!(run
        .join("quarantine/work-iteration-1-2/README.md")
        .is_file());
    let audit = c.orchestrate(&["audit", "verify"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
}

/// Whether anything is mounted on `path` in this mount namespace.
fn mounted_on(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

#[test]
fn an_ext4_volume_caps_what_codegen_writes_and_is_unmounted_when_the_run_ends() {
    let Some((_one, c)) = Contained::unless_skipped("d") else {
        return;
    };
    let roles_path = c.repo.join("roles.yaml");
    let directory = std::fs::read_to_string(&roles_path).unwrap();
    assert!(directory.contains("kind: directory"), "{directory}");
    let ext4 = directory
        .replace("kind: directory", "kind: ext4")
        .replace("size_mb: 2048", "size_mb: 384");
    std::fs::write(&roles_path, &ext4).unwrap();
    git(&c.repo, &["commit", "-qam", "an ext4 volume of 384 MiB"]);
    // In codegen's throwaway HOME, on the volume: 1 GiB in 32 MiB files (each under
    // RLIMIT_FSIZE) does not fit.
    let target = "~/fill.bin".to_owned();
    let session = c.session_with(&[("fill", target.clone())]);
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let run = c.newest_run_dir();
    let log = std::fs::read_to_string(run.join("logs/codegen.log")).unwrap();
    assert!(
        log.contains(&format!("PROBE fill {target}: denied (ENOSPC:")),
        "{log}"
    );
    let run_id = run.file_name().unwrap().to_str().unwrap().to_owned();
    let log_out = c.orchestrate(&["log", &run_id, "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&log_out.stdout).unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "volume"
            && serde_json::to_string(e)
                .unwrap()
                .contains(r#""kind":"ext4""#)),
        "{events:?}"
    );
    // Unmounted and detached when the run ended; the image stays for people to inspect.
    let volume = run.join("volume");
    assert!(!mounted_on(&volume), "{} still mounted", volume.display());
    let image = run.join("volume.ext4");
    assert!(image.is_file());
    let loops = Command::new("losetup")
        .arg("-j")
        .arg(&image)
        .output()
        .unwrap();
    assert!(loops.stdout.is_empty(), "{}", text(&loops));

    // The twin on a plain directory volume: the same write goes through, so the test can fail.
    std::fs::write(&roles_path, &directory).unwrap();
    git(&c.repo, &["commit", "-qam", "back to a directory volume"]);
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    let run = c.newest_run_dir();
    let log = std::fs::read_to_string(run.join("logs/codegen.log")).unwrap();
    assert!(
        log.contains(&format!("PROBE fill {target}: ALLOWED")),
        "{log}\n{}",
        text(&out)
    );
    assert!(!run.join("volume.ext4").exists());
}

#[test]
fn on_an_ext4_volume_a_stop_quarantines_across_filesystems_and_resume_mounts_the_image_again() {
    let Some((_one, c)) = Contained::unless_skipped("e") else {
        return;
    };
    let roles_path = c.repo.join("roles.yaml");
    let roles = std::fs::read_to_string(&roles_path)
        .unwrap()
        .replace("kind: directory", "kind: ext4")
        .replace("size_mb: 2048", "size_mb: 384");
    std::fs::write(&roles_path, roles).unwrap();
    git(&c.repo, &["commit", "-qam", "an ext4 volume"]);
    let session = example().join("sessions/stops/scope-exceeded.json");
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let run = c.newest_run_dir();
    // The upper layer lived on the image; the quarantine beside the run holds a copy of it.
    assert!(run.join("quarantine/work-iteration-1/README.md").is_file());
    assert!(!mounted_on(&run.join("volume")));
    let id = run.file_name().unwrap().to_str().unwrap().to_owned();
    let out = c.orchestrate(&[
        "resume",
        &id,
        "--reauthorize",
        "--session",
        session.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(run
        .join("quarantine/work-iteration-1-2/README.md")
        .is_file());
    assert!(!mounted_on(&run.join("volume")));
    let log = c.orchestrate(&["log", &id, "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&log.stdout).unwrap();
    let volumes: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "volume")
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    assert!(volumes[0].contains(r#""created":true"#), "{volumes:?}");
    assert!(volumes[1].contains(r#""created":false"#), "{volumes:?}");
}

#[test]
fn a_git_hook_planted_in_the_overlay_stops_the_run_as_a_security_violation() {
    let Some((_one, c)) = Contained::unless_skipped("f") else {
        return;
    };
    let session = example().join("sessions/stops/git-hooks.json");
    let out = c.orchestrate(&["start", "FR-12", "--session", session.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains("STOP_SECURITY_VIOLATION"), "{all}");
    assert!(all.contains(".git/hooks/pre-commit"), "{all}");
    let run = c.newest_run_dir();
    // The hook is set aside with the rest of the upper layer, for a person to look at.
    assert!(run
        .join("quarantine/work-iteration-1/.git/hooks/pre-commit")
        .is_file());
    assert!(!all.contains("staging moved by the gate"), "{all}");
}
