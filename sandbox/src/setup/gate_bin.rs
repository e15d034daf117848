//! Installing the promotion gate so that it runs as the gate's OS user whoever calls it: a copy
//! of the `orchestrate-gate` binary at `<state>/bin/orchestrate-gate`, owned by the gate's user
//! and group, mode 6755 (set-user-id and set-group-id).
//!
//! The copy is written to a fresh file (O_EXCL|O_NOFOLLOW, 0700, root) in the root-owned `bin/`
//! directory, handed to the gate's user with `fchown`, given its set-id bits with `fchmod` *after*
//! the chown (a chown clears them), synced, and renamed over the final name. So nobody else ever
//! holds a writable handle on a set-id file, and a half-written binary never sits under the
//! final name. On a file system mounted `nosuid` the copy would silently run as its caller: setup
//! does not install it there and says so in its report (the gate then runs as whoever calls it,
//! as without setup).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{fchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::statvfs::{statvfs, FsFlags};

use super::apply::Change;
use super::plan::{Owner, SetupPlan, SetupSpec, Step};
use super::SetupError;

/// Directory (inside the state directory) that holds the installed gate.
pub const GATE_BIN_DIR: &str = "bin";
/// File name of the installed gate.
pub const GATE_BIN_NAME: &str = "orchestrate-gate";
/// Mode of the installed gate: set-uid and set-gid to the gate, readable and runnable by all.
pub const GATE_BIN_MODE: u32 = 0o6755;

/// `<state>/bin/orchestrate-gate`.
pub fn installed_gate_path(state_dir: &Path) -> PathBuf {
    state_dir.join(GATE_BIN_DIR).join(GATE_BIN_NAME)
}

/// Appends the gate install to `plan`: the root-owned `bin/` directory (0755) and the set-id
/// copy of `source` owned by the gate's user and group.
pub fn add_gate_binary(plan: &mut SetupPlan, spec: &SetupSpec, source: PathBuf) {
    let state = &spec.state_dir;
    plan.steps.push(Step::Dir {
        path: state.join(GATE_BIN_DIR),
        owner: Owner::root(),
        mode: 0o755,
    });
    plan.steps.push(Step::GateBinary {
        source,
        path: installed_gate_path(state),
        owner: Owner::same(&spec.gate_user),
        mode: GATE_BIN_MODE,
    });
}

fn install_err(path: &Path) -> impl Fn(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::GateInstall {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes `dest` a copy of `source` owned by `uid:gid` with `mode`; says what it had to do.
pub fn ensure_gate_binary(
    source: &Path,
    dest: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<Change, SetupError> {
    let dir = dest
        .parent()
        .ok_or_else(|| SetupError::NotADirectory(dest.to_path_buf()))?;
    let vfs = statvfs(dir).map_err(|e| SetupError::GateInstall {
        path: dir.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    if vfs.flags().contains(FsFlags::ST_NOSUID) {
        return Ok(Change::Left(format!(
            "{} is on a file system mounted nosuid: not installed, the gate runs as its caller",
            dir.display()
        )));
    }
    let bytes = fs::read(source).map_err(install_err(source))?;
    let existing = match fs::symlink_metadata(dest) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(SetupError::NotARegularFile(dest.to_path_buf()))
        }
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(source) => {
            return Err(SetupError::Metadata {
                path: dest.to_path_buf(),
                source,
            })
        }
    };
    if let Some(meta) = &existing {
        let same = (meta.uid(), meta.gid(), meta.mode() & 0o7777) == (uid, gid, mode)
            && fs::read(dest).map_err(install_err(dest))? == bytes;
        if same {
            return Ok(Change::Unchanged);
        }
    }
    let tmp = dest.with_extension("new");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(install_err(&tmp)(e)),
        _ => {}
    }
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(install_err(&tmp))?;
    f.write_all(&bytes).map_err(install_err(&tmp))?;
    fchown(&f, Some(uid), Some(gid)).map_err(install_err(&tmp))?;
    // After the chown, which clears set-id bits.
    f.set_permissions(Permissions::from_mode(mode))
        .map_err(install_err(&tmp))?;
    f.sync_all().map_err(install_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, dest).map_err(install_err(dest))?;
    Ok(match existing {
        None => Change::Created,
        Some(_) => Change::Fixed(format!("replaced with a copy of {}", source.display())),
    })
}

/// Deletes the installed gate (before its user goes: a set-id file left behind would belong to
/// whichever account gets that uid next).
pub fn remove_gate_binary(state_dir: &Path) -> Result<Change, SetupError> {
    let path = installed_gate_path(state_dir);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Change::Absent),
        Err(source) => Err(SetupError::Metadata { path, source }),
        Ok(_) => {
            fs::remove_file(&path).map_err(|source| SetupError::Remove {
                path: path.clone(),
                source,
            })?;
            Ok(Change::Removed)
        }
    }
}
