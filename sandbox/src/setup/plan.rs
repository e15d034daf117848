//! The setup plan as data: which groups, users, directories and keys `orchestrate setup` makes.
//!
//! Pure: no lookups, no writes. `apply` (in `apply.rs`) executes the plan; tests compare whole
//! plans with `assert_eq!`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SetupError;

/// Login shell of every account setup creates: nobody logs in as a role.
pub const NOLOGIN: &str = "/usr/sbin/nologin";
/// Home of every account setup creates: a path that never exists, so nothing is kept there.
pub const NO_HOME: &str = "/nonexistent";
/// File name of a principal's private key inside `<state>/keys/<label>/`.
pub const PRIVATE_KEY_FILE: &str = "ed25519.key";
/// File name of a principal's public key inside `<state>/keys/<label>/`.
pub const PUBLIC_KEY_FILE: &str = "ed25519.pub";
/// Key label of the promotion gate.
pub const GATE_LABEL: &str = "gate";
/// Key label of the orchestrator.
pub const ORCHESTRATOR_LABEL: &str = "orchestrator";

/// What setup is asked to provide: the six roles' users (from roles.yaml), the gate's and the
/// orchestrator's users, and the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupSpec {
    /// `(role label, OS user name)`, e.g. `("codegen", "orch-codegen")`.
    pub roles: Vec<(String, String)>,
    /// The promotion gate's OS user (roles.yaml `gate.user`).
    pub gate_user: String,
    /// The orchestrator's OS user (roles.yaml `orchestrator.user`).
    pub orchestrator_user: String,
    /// State directory, outside the repository and every role's view.
    pub state_dir: PathBuf,
    /// File name of the orchestrator's SQLite database inside the state directory (the
    /// orchestrator creates it; setup only restricts it, and its `-wal`/`-shm` companions).
    pub db_file: String,
}

/// Owner of a directory or file: a user and a group, both by name (resolved at apply time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// User name.
    pub user: String,
    /// Group name.
    pub group: String,
}

impl Owner {
    /// `root:root`.
    pub fn root() -> Self {
        Self::same("root")
    }

    /// `name:name` (the user's own group).
    pub fn same(name: &str) -> Self {
        Self {
            user: name.to_owned(),
            group: name.to_owned(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user, self.group)
    }
}

/// One step of the plan, in the order it must run (groups before users, users before the
/// directories they own, directories before keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A system group.
    Group {
        /// Group name.
        name: String,
    },
    /// A system user whose primary group is `group`.
    User {
        /// User name.
        name: String,
        /// Primary group name.
        group: String,
        /// Home directory (never created).
        home: PathBuf,
        /// Login shell.
        shell: PathBuf,
        /// GECOS comment, says what the account is for.
        comment: String,
    },
    /// A directory with exactly this owner and mode.
    Dir {
        /// Absolute path.
        path: PathBuf,
        /// Owner.
        owner: Owner,
        /// Permission bits.
        mode: u32,
    },
    /// A file setup does not create but, when it exists, restricts to `mode` (owner kept): the
    /// orchestrator's database, which it creates itself on first use.
    RestrictIfPresent {
        /// Absolute path.
        path: PathBuf,
        /// Permission bits it must have.
        mode: u32,
    },
    /// The promotion gate installed as its own user: a copy of `source` at `path`, owned by
    /// `owner`, with `mode` (set-uid and set-gid), replaced when its content differs.
    GateBinary {
        /// The `orchestrate-gate` binary to copy (next to the `orchestrate` binary).
        source: PathBuf,
        /// Where it is installed (`<state>/bin/orchestrate-gate`).
        path: PathBuf,
        /// Owner: the gate's user and group.
        owner: Owner,
        /// Permission bits, set-id bits included.
        mode: u32,
    },
    /// An ed25519 key pair in `dir`: `ed25519.key` (0400, `owner`) and `ed25519.pub` (0444,
    /// root, so no principal can swap the key others verify with).
    KeyPair {
        /// Principal label (`codegen`, `gate`, `orchestrator`, ...).
        label: String,
        /// Directory holding the two files.
        dir: PathBuf,
        /// Owner of both files.
        owner: Owner,
    },
}

impl Step {
    /// Path of the private key file of a `KeyPair` step.
    pub fn private_key_path(dir: &Path) -> PathBuf {
        dir.join(PRIVATE_KEY_FILE)
    }

    /// Path of the public key file of a `KeyPair` step.
    pub fn public_key_path(dir: &Path) -> PathBuf {
        dir.join(PUBLIC_KEY_FILE)
    }
}

impl fmt::Display for Step {
    /// The shell-like line `--dry-run` prints for the step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Group { name } => write!(f, "groupadd --system {name}"),
            Step::User {
                name,
                group,
                home,
                shell,
                comment,
            } => write!(
                f,
                "useradd --system --gid {group} --no-create-home --home-dir {} --shell {} --comment '{comment}' {name}",
                home.display(),
                shell.display()
            ),
            Step::Dir { path, owner, mode } => {
                write!(f, "mkdir {} (owner {owner}, mode {mode:04o})", path.display())
            }
            Step::RestrictIfPresent { path, mode } => {
                write!(f, "chmod {mode:04o} {} (if present; created by the orchestrator)", path.display())
            }
            Step::GateBinary { source, path, owner, mode } => write!(
                f,
                "install {} as {} (owner {owner}, mode {mode:04o}: set-uid and set-gid, so the gate runs as its own user whoever calls it)",
                source.display(),
                path.display()
            ),
            Step::KeyPair { label, dir, owner } => write!(
                f,
                "keygen ed25519 for {label}: {} (owner {owner}, mode 0400) + {} (owner root:root, mode 0444); kept if present",
                Step::private_key_path(dir).display(),
                Step::public_key_path(dir).display()
            ),
        }
    }
}

/// The whole setup, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupPlan {
    /// The state directory the plan lays out.
    pub state_dir: PathBuf,
    /// Steps in execution order.
    pub steps: Vec<Step>,
}

impl SetupPlan {
    /// Users the plan creates, in plan order.
    pub fn users(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::User { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Groups the plan creates, in plan order.
    pub fn groups(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Group { name } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for SetupPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

/// Longest user name useradd accepts on Linux.
const MAX_USER_LEN: usize = 32;

/// A portable user name: `[a-z_][a-z0-9_-]*`, at most 32 bytes (what useradd and dscl both take).
fn check_user(name: &str) -> Result<(), SetupError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.len() > MAX_USER_LEN || !first_ok || !rest_ok || name == "root" {
        return Err(SetupError::InvalidUserName(name.to_owned()));
    }
    Ok(())
}

/// A label becomes a directory name under `keys/`: no separators, no dot names.
fn check_label(label: &str) -> Result<(), SetupError> {
    let ok = !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(SetupError::InvalidLabel(label.to_owned()));
    }
    Ok(())
}

/// The database file name is a plain name inside the state directory.
fn check_db_file(name: &str) -> Result<(), SetupError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if !ok {
        return Err(SetupError::InvalidDbFile(name.to_owned()));
    }
    Ok(())
}

/// Builds the plan. Refuses bad names, a relative state dir, and a user or label used twice
/// (two roles sharing a user would share a key, which defeats per-role signatures).
pub fn plan(spec: &SetupSpec) -> Result<SetupPlan, SetupError> {
    if !spec.state_dir.is_absolute() {
        return Err(SetupError::RelativeStateDir(spec.state_dir.clone()));
    }
    check_db_file(&spec.db_file)?;
    let mut principals: Vec<(&str, &str, String)> = spec
        .roles
        .iter()
        .map(|(label, user)| {
            (
                label.as_str(),
                user.as_str(),
                format!("orchestrate role {label}"),
            )
        })
        .collect();
    principals.push((
        GATE_LABEL,
        &spec.gate_user,
        "orchestrate promotion gate".to_owned(),
    ));
    principals.push((
        ORCHESTRATOR_LABEL,
        &spec.orchestrator_user,
        "orchestrate orchestrator".to_owned(),
    ));

    let mut seen_users: Vec<&str> = Vec::new();
    let mut seen_labels: Vec<&str> = Vec::new();
    for (label, user, _) in &principals {
        check_label(label)?;
        check_user(user)?;
        if seen_users.contains(user) {
            return Err(SetupError::DuplicateUser((*user).to_owned()));
        }
        if seen_labels.contains(label) {
            return Err(SetupError::DuplicateLabel((*label).to_owned()));
        }
        seen_users.push(user);
        seen_labels.push(label);
    }

    let state = &spec.state_dir;
    let mut steps = Vec::new();
    for (_, user, comment) in &principals {
        steps.push(Step::Group {
            name: (*user).to_owned(),
        });
        steps.push(Step::User {
            name: (*user).to_owned(),
            group: (*user).to_owned(),
            home: PathBuf::from(NO_HOME),
            shell: PathBuf::from(NOLOGIN),
            comment: comment.clone(),
        });
    }
    // 0751 root: everyone may traverse to a path they were given, nobody may list it, and only
    // root may create, rename or replace anything in it (the database, integration.git, keys/,
    // runs/): the gate checks that its repository's parent is not writable by others.
    let dir = |path: PathBuf, owner: Owner, mode: u32| Step::Dir { path, owner, mode };
    steps.push(dir(state.clone(), Owner::root(), 0o751));
    // Runs: written by the orchestrator, read by the gate (group), closed to the roles.
    steps.push(dir(
        state.join("runs"),
        Owner {
            user: spec.orchestrator_user.clone(),
            group: spec.gate_user.clone(),
        },
        0o750,
    ));
    // The gate alone writes the integration repository; others may read (fetch) it.
    steps.push(dir(
        state.join("integration.git"),
        Owner::same(&spec.gate_user),
        0o755,
    ));
    steps.push(dir(state.join("keys"), Owner::root(), 0o751));
    for (label, user, _) in &principals {
        let key_dir = state.join("keys").join(label);
        // root 0711: the gate and the orchestrator open every public key by name; nobody but
        // root can add, replace or rename a key file. The private key's own 0400 mode and owner
        // are what keep it to its user.
        steps.push(dir(key_dir.clone(), Owner::root(), 0o711));
        steps.push(Step::KeyPair {
            label: (*label).to_owned(),
            dir: key_dir,
            owner: Owner::same(user),
        });
    }
    for suffix in ["", "-wal", "-shm"] {
        steps.push(Step::RestrictIfPresent {
            path: state.join(format!("{}{suffix}", spec.db_file)),
            mode: 0o600,
        });
    }
    Ok(SetupPlan {
        state_dir: state.clone(),
        steps,
    })
}
