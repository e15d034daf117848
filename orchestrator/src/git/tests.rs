use std::path::Path;
use std::process::Command;

use super::*;

fn sh(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn repo() -> (tempfile::TempDir, Repo, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    sh(p, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(p.join("src/old")).unwrap();
    std::fs::write(p.join("src/lib.rs"), "pub fn a() {}\n").unwrap();
    std::fs::write(p.join("src/old/x.rs"), "x\n").unwrap();
    std::fs::write(p.join("src/old/y.rs"), "y\n").unwrap();
    std::fs::write(p.join("README"), "r\n").unwrap();
    sh(p, &["add", "-A"]);
    sh(p, &["commit", "-q", "-m", "base"]);
    let repo = Repo::discover(p).unwrap();
    let base = repo.head_commit().unwrap();
    (dir, repo, base)
}

/// mknod of a 0/0 char device needs CAP_MKNOD; without it the whiteout case cannot be built.
fn whiteout(path: &Path) -> bool {
    let st = Command::new("mknod")
        .arg(path)
        .args(["c", "0", "0"])
        .status();
    match st {
        Ok(s) if s.success() => true,
        _ => {
            eprintln!(
                "SKIP: cannot mknod a whiteout at {} (not root?)",
                path.display()
            );
            false
        }
    }
}

#[test]
fn upper_layer_becomes_a_commit_on_the_agent_branch_without_touching_the_worktree() {
    let (dir, repo, base) = repo();
    let status_before = sh(dir.path(), &["status", "--porcelain"]);
    let index_before = std::fs::read(dir.path().join(".git/index")).unwrap();

    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    std::fs::create_dir_all(u.join("src")).unwrap();
    std::fs::write(u.join("src/slug.rs"), "pub fn slug() {}\n").unwrap();
    std::fs::write(u.join("src/lib.rs"), "pub mod slug;\n").unwrap();
    let can_whiteout = whiteout(&u.join("README"));

    let (tree, changes) = repo.candidate_changes(&base, &Candidate::Upper(u)).unwrap();
    let mut expect = vec![
        Change {
            path: "src/lib.rs".into(),
            kind: ChangeKind::Modified,
        },
        Change {
            path: "src/slug.rs".into(),
            kind: ChangeKind::Added,
        },
    ];
    if can_whiteout {
        expect.insert(
            0,
            Change {
                path: "README".into(),
                kind: ChangeKind::Deleted,
            },
        );
    }
    assert_eq!(changes, expect);

    let branch = "agent/FR-12/r-1";
    let c1 = repo
        .commit_tree(
            &tree,
            &base,
            branch,
            "iteration 1\n\nplan_id=p1 iteration=1\n",
            None,
        )
        .unwrap();
    assert_eq!(
        repo.resolve(&format!("refs/heads/{branch}")).unwrap(),
        Some(c1.clone())
    );
    // Creating the branch again (expected: absent) must fail: update-ref is a compare-and-swap.
    assert!(matches!(
        repo.commit_tree(&tree, &base, branch, "again", None),
        Err(GitError::Failed { .. })
    ));
    let log = repo.log(&base, branch).unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].1.contains("plan_id=p1 iteration=1"));

    // The engineer's checkout is exactly as it was.
    assert_eq!(sh(dir.path(), &["status", "--porcelain"]), status_before);
    assert_eq!(
        std::fs::read(dir.path().join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(sh(dir.path(), &["rev-parse", "HEAD"]), base);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("src/lib.rs")).unwrap(),
        "pub fn a() {}\n"
    );

    let out = tempfile::tempdir().unwrap();
    repo.materialise(&c1, &out.path().join("tree")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("tree/src/slug.rs")).unwrap(),
        "pub fn slug() {}\n"
    );
    assert_eq!(out.path().join("tree/README").exists(), !can_whiteout);
    assert!(!out.path().join("tree/.git").exists());
}

#[test]
fn whiteout_on_a_directory_and_an_opaque_directory_delete_everything_below() {
    let (_dir, repo, base) = repo();
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    std::fs::create_dir_all(u.join("src")).unwrap();
    if !whiteout(&u.join("src/old")) {
        return;
    }
    let (_, changes) = repo.candidate_changes(&base, &Candidate::Upper(u)).unwrap();
    let paths: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(
        paths,
        vec![
            ("src/old/x.rs", ChangeKind::Deleted),
            ("src/old/y.rs", ChangeKind::Deleted)
        ]
    );
}

#[test]
fn a_full_tree_copy_counts_ignored_files_and_deletions() {
    let (_dir, repo, base) = repo();
    let copy = tempfile::tempdir().unwrap();
    repo.materialise(&base, copy.path()).unwrap();
    std::fs::write(copy.path().join(".gitignore"), "*.log\n").unwrap();
    std::fs::write(copy.path().join("x.log"), "hidden\n").unwrap();
    std::fs::remove_file(copy.path().join("README")).unwrap();
    let (_, changes) = repo
        .candidate_changes(&base, &Candidate::FullTree(copy.path()))
        .unwrap();
    let paths: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(
        paths,
        vec![
            (".gitignore", ChangeKind::Added),
            ("README", ChangeKind::Deleted),
            ("x.log", ChangeKind::Added)
        ]
    );
}

#[test]
fn scan_reports_specials_and_executables() {
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    std::fs::write(u.join("run.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(u.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("run.sh", u.join("link")).unwrap();
    let entries = scan_upper(u).unwrap();
    assert_eq!(
        entries,
        vec![
            UpperEntry {
                path: "link".into(),
                kind: UpperKind::Symlink
            },
            UpperEntry {
                path: "run.sh".into(),
                kind: UpperKind::File { executable: true }
            },
        ]
    );
}
