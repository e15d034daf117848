//! A parsed copy of roles.yaml, so the hot path (`orchestrate sandbox exec`, which launches one
//! role process) does not pay for YAML parsing each time: serde-saphyr takes ~0.5 ms warm and
//! ~1.4 ms cold for the 6.7 KB project file, the JSON copy ~0.05 ms.
//!
//! The copy is keyed by the SHA-256 of the file's exact bytes (and this crate's version), so any
//! edit is seen at once; it is only ever written after the file loaded *and validated*, so a
//! cached policy is one that passed every check. It lives in a directory the caller owns (the
//! state directory's `cache/`); a copy that is not owned by the effective user, or is writable by
//! anybody else, is ignored, as is one that does not parse or whose key does not match. Any
//! problem with the cache falls back to the full load; the cache can make a load faster, never
//! different.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::load::{load_roles_text, read_text, LoadError};
use crate::roles::RolesFile;

/// Bump when the cached shape changes in a way serde would still accept.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    version: String,
    sha256: String,
    roles: RolesFile,
}

/// Where the copy of a file with this content lives.
fn entry_path(cache_dir: &Path, sha256: &str) -> PathBuf {
    cache_dir.join(format!("roles-{}.json", sha256.get(..32).unwrap_or(sha256)))
}

/// `load::load_roles`, through a cache in `cache_dir` (created 0700 if missing).
pub fn load_roles_cached(path: &Path, cache_dir: &Path) -> Result<RolesFile, LoadError> {
    let (text, sha256, entry, hit) = lookup(path, cache_dir)?;
    if let Some(roles) = hit {
        return Ok(roles);
    }
    let roles = load_roles_text(path, &text)?;
    // Best effort: a cache that cannot be written only means the next load parses again.
    let _ = write_entry(cache_dir, &entry, &sha256, &roles);
    Ok(roles)
}

/// The cached copy of `path` as it is now, without ever parsing YAML: `Ok(None)` when there is
/// none (never loaded, edited since, or not trustworthy). For a binary that must stay small (the
/// `orchestrate` front): it hands a miss to one that can parse.
pub fn read_cached(path: &Path, cache_dir: &Path) -> Result<Option<RolesFile>, LoadError> {
    lookup(path, cache_dir).map(|(_, _, _, hit)| hit)
}

/// The file's text, its key, where its copy lives, and the copy if it is there and good.
fn lookup(
    path: &Path,
    cache_dir: &Path,
) -> Result<(String, String, PathBuf, Option<RolesFile>), LoadError> {
    let text = read_text(path)?;
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    let entry = entry_path(cache_dir, &sha256);
    let hit = read_entry(&entry, &sha256);
    Ok((text, sha256, entry, hit))
}

/// The cached copy, if it is ours, private, and for exactly this content.
fn read_entry(entry: &Path, sha256: &str) -> Option<RolesFile> {
    let file = std::fs::File::open(entry).ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return None;
    }
    let e: Entry = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
    (e.format == FORMAT && e.version == env!("CARGO_PKG_VERSION") && e.sha256 == sha256)
        .then_some(e.roles)
}

fn write_entry(
    cache_dir: &Path,
    entry: &Path,
    sha256: &str,
    roles: &RolesFile,
) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)?;
    let json = serde_json::to_vec(&Entry {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        sha256: sha256.to_owned(),
        roles: roles.clone(),
    })
    .map_err(std::io::Error::other)?;
    // Write a private temporary file, then rename: a reader sees the old copy or the new one.
    let tmp = cache_dir.join(format!(".roles-{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&json)?;
    drop(f);
    std::fs::rename(&tmp, entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn project_roles() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roles.yaml")
    }

    #[test]
    fn cached_load_equals_the_full_load_and_hits_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let full = crate::load::load_roles(&project_roles()).unwrap();
        let first = load_roles_cached(&project_roles(), &cache).unwrap();
        assert_eq!(first, full);
        let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert_eq!(entries.len(), 1, "one entry written");
        let second = load_roles_cached(&project_roles(), &cache).unwrap();
        assert_eq!(second, full, "the JSON copy round-trips to the same policy");
    }

    #[test]
    fn read_cached_answers_only_from_a_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let roles = dir.path().join("roles.yaml");
        std::fs::copy(project_roles(), &roles).unwrap();
        assert_eq!(
            read_cached(&roles, &cache).unwrap(),
            None,
            "never loaded: a miss"
        );
        let full = load_roles_cached(&roles, &cache).unwrap();
        assert_eq!(read_cached(&roles, &cache).unwrap(), Some(full));
        let mut text = std::fs::read_to_string(&roles).unwrap();
        text.push_str("\n# edited\n");
        std::fs::write(&roles, text).unwrap();
        assert_eq!(read_cached(&roles, &cache).unwrap(), None, "edited: a miss");
        assert!(
            read_cached(&dir.path().join("missing.yaml"), &cache).is_err(),
            "an unreadable file is an error, not a miss"
        );
    }

    #[test]
    fn an_edit_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let roles = dir.path().join("roles.yaml");
        let text = std::fs::read_to_string(project_roles()).unwrap();
        std::fs::write(&roles, &text).unwrap();
        load_roles_cached(&roles, &cache).unwrap();
        std::fs::write(
            &roles,
            text.replace("per_run_usd: 5.00", "per_run_usd: 4.00"),
        )
        .unwrap();
        let edited = load_roles_cached(&roles, &cache).unwrap();
        assert_eq!(edited, crate::load::load_roles(&roles).unwrap());
        // And an invalid edit is an error, not the old cached policy.
        std::fs::write(&roles, text.replace("codegen:", "codgen:")).unwrap();
        assert!(load_roles_cached(&roles, &cache).is_err());
    }

    #[test]
    fn a_tampered_or_foreign_copy_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = project_roles();
        let full = crate::load::load_roles(&path).unwrap();
        load_roles_cached(&path, &cache).unwrap();
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A copy with a different policy under the right name, but writable by others: ignored.
        let mut other = full.clone();
        other.budgets.per_run_usd = 1000.0;
        let sha = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
        let json = serde_json::to_vec(&Entry {
            format: FORMAT,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            sha256: sha.clone(),
            roles: other.clone(),
        })
        .unwrap();
        std::fs::write(&entry, &json).unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(load_roles_cached(&path, &cache).unwrap(), full);
        // Garbage under the right name: ignored, and replaced by a good copy.
        std::fs::write(&entry, b"{not json").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_roles_cached(&path, &cache).unwrap(), full);
        assert_eq!(read_entry(&entry, &sha), Some(full));
    }
}
