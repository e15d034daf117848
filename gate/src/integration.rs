//! The integration repository (`<state>/integration.git`, bare): where `staging` and `main` live.
//!
//! Who can write what is enforced by file ownership, so it holds whatever process asks:
//! - The whole repository belongs to the gate's OS user (`gate.user` in roles.yaml), directories
//!   0755 and files 0644: the top directory (so nobody else can create `packed-refs` or
//!   `packed-refs.lock` and "repack" a protected ref into a different value), `refs/heads/`
//!   (so nobody else can create `refs/heads/staging.lock`, the only way git replaces a loose
//!   ref), the ref files themselves, `config` and `hooks/` (so nobody can add a hook or a
//!   `core.hooksPath` that would run as the gate), and `objects/`.
//! - Objects are NOT group-writable. A shared object directory (`core.sharedRepository=group`)
//!   would let any group member delete and re-create a loose object file under the same name
//!   with different content; git reads loose objects without re-hashing them and prefers them
//!   to packed copies, so that member could change what an already-promoted `staging` commit
//!   contains without touching the ref. Instead, the orchestrator hands the agent branch to the
//!   gate as a git bundle (a data file), and the gate fetches it itself: index-pack re-hashes
//!   every object, and the objects end up owned by the gate. The agent branch is then visible as
//!   `refs/heads/agent/<...>` in this repository, written by the gate.
//! - Everything is world-readable, so the engineer's clone can use it as the remote
//!   `orchestrate` (`git log orchestrate/staging`).
//!
//! The parent directory matters too: whoever can write `<state>` can rename this repository
//! away and put another one in its place. [`parent_is_safe`] reports that, and receipts list it
//! as uncertain when it does not hold.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::git::{Git, GitError};

/// Directory name of the integration repository inside the state directory.
pub const INTEGRATION_DIR: &str = "integration.git";
/// The protected refs. Only the gate moves them, fast-forward only (rollback excepted, recorded).
pub const STAGING: &str = "refs/heads/staging";
/// See [`STAGING`].
pub const MAIN: &str = "refs/heads/main";
/// Optional protected ref, created only when asked for.
pub const DEV: &str = "refs/heads/dev";

/// Errors from creating or checking the integration repository.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The target directory exists and is not empty.
    #[error("integration repository {path} already exists")]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// Creating the directory failed.
    #[error("creating {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A git step failed.
    #[error("integration repository: {0}")]
    Git(#[from] GitError),
    /// The seed revision does not name a commit in the source repository.
    #[error("seed revision `{rev}` is not a commit in {source_repo}")]
    NoSeed {
        /// Source repository.
        source_repo: PathBuf,
        /// Revision asked for.
        rev: String,
    },
    /// Walking the tree to set ownership failed.
    #[error("reading {path}: {source}")]
    Walk {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// chown failed.
    #[error("chown {path} to {uid}:{gid}: {source}")]
    Chown {
        /// The path.
        path: PathBuf,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Cause.
        source: std::io::Error,
    },
    /// chmod failed.
    #[error("chmod {path} to {mode:o}: {source}")]
    Chmod {
        /// The path.
        path: PathBuf,
        /// Mode.
        mode: u32,
        /// Cause.
        source: std::io::Error,
    },
}

/// Who owns the repository: the gate's OS user and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// uid of `gate.user`.
    pub uid: u32,
    /// Its primary gid (a group of its own: never a group the orchestrator is in).
    pub gid: u32,
}

/// Where the first `main` and `staging` come from.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The engineer's repository.
    pub source_repo: PathBuf,
    /// The revision that becomes `main` and `staging` (e.g. `HEAD` or `main`).
    pub rev: String,
    /// Also create a protected `dev` ref at the same commit.
    pub dev: bool,
}

/// Creates the bare integration repository at `path`, seeds `main` and `staging` (and `dev`
/// when asked) from `seed`, and, when `owner` is given (the real setup, as root), gives every
/// file to the gate's user with no group or other write bit.
///
/// Returns the seeded commit id.
pub fn init(path: &Path, seed: &Seed, owner: Option<Owner>) -> Result<String, IntegrationError> {
    if path.join("HEAD").exists() {
        return Err(IntegrationError::Exists {
            path: path.to_owned(),
        });
    }
    fs::create_dir_all(path).map_err(|source| IntegrationError::CreateDir {
        path: path.to_owned(),
        source,
    })?;
    let git = Git::new(path);
    git.run(&["init", "--quiet", "--bare", "--initial-branch=main", "."])?;
    for (key, value) in [
        // Only the gate writes here; these keep git itself from rewriting refs behind its back.
        ("receive.denyNonFastForwards", "true"),
        ("receive.denyDeletes", "true"),
        ("gc.auto", "0"),
        ("gc.packRefs", "false"),
        // A reflog of every protected-ref move, written by the gate as a second record.
        ("core.logAllRefUpdates", "always"),
    ] {
        git.run(&["config", key, value])?;
    }
    let source = Git::new(&seed.source_repo);
    let commit = source
        .resolve_commit(&seed.rev)?
        .ok_or_else(|| IntegrationError::NoSeed {
            source_repo: seed.source_repo.clone(),
            rev: seed.rev.clone(),
        })?;
    let src = seed.source_repo.to_string_lossy().into_owned();
    // The seed belongs to the engineer, not to the gate's user. The upload-pack that git starts
    // for it does not inherit `-c` options (git clears them for the other repository), so the
    // trust goes on its own command line; upload-pack only reads from the one path it is given
    // and is what git serves untrusted repositories with.
    let src_trust = format!("safe.directory={src}");
    git.run(&[
        "-c",
        &src_trust,
        "fetch",
        "--upload-pack=git -c 'safe.directory=*' upload-pack",
        "--no-tags",
        "--no-write-fetch-head",
        "--quiet",
        &src,
        &format!("{commit}:refs/heads/seed"),
    ])?;
    git.update_ref(MAIN, &commit, None, "orchestrate-gate: seed main")?;
    git.update_ref(STAGING, &commit, None, "orchestrate-gate: seed staging")?;
    if seed.dev {
        git.update_ref(DEV, &commit, None, "orchestrate-gate: seed dev")?;
    }
    git.run(&["update-ref", "-d", "refs/heads/seed"])?;
    fs::create_dir_all(path.join("refs/heads/agent")).map_err(|source| {
        IntegrationError::CreateDir {
            path: path.join("refs/heads/agent"),
            source,
        }
    })?;
    if let Some(owner) = owner {
        secure_tree(path, owner)?;
    }
    Ok(commit)
}

/// Gives every file under `root` to `owner`, directories 0755 and files 0644 (0444 objects
/// stay 0444): nobody but the owner may create, rename or write anything.
pub fn secure_tree(root: &Path, owner: Owner) -> Result<(), IntegrationError> {
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|source| IntegrationError::Walk {
            path: path.clone(),
            source,
        })?;
        std::os::unix::fs::lchown(&path, Some(owner.uid), Some(owner.gid)).map_err(|source| {
            IntegrationError::Chown {
                path: path.clone(),
                uid: owner.uid,
                gid: owner.gid,
                source,
            }
        })?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = if meta.is_dir() {
            0o755
        } else {
            // Keep read-only files read-only; drop every group/other write and special bit.
            meta.mode() & 0o644 | 0o400
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|source| {
            IntegrationError::Chmod {
                path: path.clone(),
                mode,
                source,
            }
        })?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(|source| IntegrationError::Walk {
                path: path.clone(),
                source,
            })? {
                let entry = entry.map_err(|source| IntegrationError::Walk {
                    path: path.clone(),
                    source,
                })?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Whether the directory holding the repository can only be changed by root or the gate: a
/// writable parent would let its writer swap the whole repository.
pub fn parent_is_safe(repo: &Path, gate_uid: u32) -> bool {
    let Some(parent) = repo.parent() else {
        return false;
    };
    match fs::metadata(parent) {
        Ok(meta) => {
            (meta.uid() == 0 || meta.uid() == gate_uid)
                && (meta.mode() & 0o022 == 0 || meta.mode() & 0o1000 != 0)
        }
        Err(_) => false,
    }
}

/// The ref under which the gate keeps a copy of a run's agent branch.
pub fn agent_ref(agent_branch: &str) -> String {
    format!("refs/heads/{agent_branch}")
}
