//! Taking a finished launch's overlay work dir out of the way without paying for its removal.
//!
//! Removing a directory costs 0.5–4 ms per `rmdir` on an ext4 volume mounted with online
//! `discard` (measured on this project's CI machines), and a `volatile` overlay leaves four
//! levels of them behind. A launch therefore only *retires* its work dir (one `rename`, ~50 µs)
//! and the next launch on the same volume *sweeps* retired dirs while its own child builds the
//! sandbox on the other core. The run's volume removal takes whatever is left.
//!
//! A work dir is retired only after every process of its launch is gone, so a sweep never
//! touches an overlay in use; a sweeper first renames a retired dir to a name of its own, so two
//! concurrent launches never remove the same one.

use std::io;
use std::path::{Path, PathBuf};

const RETIRED: &str = ".retired-";
const SWEEPING: &str = ".sweeping-";
/// At most this many retired dirs per launch, so a backlog never delays one launch for long.
const SWEEP_MAX: usize = 4;

/// Renames `dir` to `.retired-<name>` beside it; removes it outright if the rename fails.
pub fn retire(dir: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return remove(dir);
    };
    let mut retired = std::ffi::OsString::from(RETIRED);
    retired.push(name);
    match std::fs::rename(dir, parent.join(retired)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => remove(dir),
    }
}

/// Removes up to [`SWEEP_MAX`] dirs that earlier launches retired under `parent`; returns how
/// many. `me` makes the sweeper's claim names unique.
pub fn sweep(parent: &Path, me: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut claimed: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        if claimed.len() >= SWEEP_MAX {
            break;
        }
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(RETIRED)) else {
            continue;
        };
        let claim = parent.join(format!("{SWEEPING}{me}-{rest}"));
        // Whoever renames first owns it; the loser sees NotFound and moves on.
        if std::fs::rename(entry.path(), &claim).is_ok() {
            claimed.push(claim);
        }
    }
    let n = claimed.len();
    for dir in claimed {
        let _ = remove(&dir);
    }
    n
}

fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_dir_is_renamed_then_swept_by_the_next_launch() {
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("L1");
        std::fs::create_dir_all(work.join("work/incompat/volatile")).unwrap();
        retire(&work).unwrap();
        assert!(!work.exists());
        let retired = t.path().join(".retired-L1");
        assert!(retired.join("work/incompat/volatile").is_dir());
        // A live launch's dir is never touched by a sweep.
        std::fs::create_dir(t.path().join("L2")).unwrap();
        assert_eq!(sweep(t.path(), "L2"), 1);
        assert!(!retired.exists());
        assert!(t.path().join("L2").is_dir());
        assert_eq!(sweep(t.path(), "L3"), 0);
    }

    #[test]
    fn a_sweep_takes_at_most_its_share() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..(SWEEP_MAX + 2) {
            std::fs::create_dir(t.path().join(format!("{RETIRED}L{i}"))).unwrap();
        }
        assert_eq!(sweep(t.path(), "A"), SWEEP_MAX);
        assert_eq!(sweep(t.path(), "B"), 2);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn retiring_a_missing_dir_is_not_an_error() {
        let t = tempfile::tempdir().unwrap();
        retire(&t.path().join("gone")).unwrap();
    }
}
