//! Per-principal ed25519 key pairs on disk: `ed25519.key` (PKCS#8 PEM, 0400, owned by the
//! principal's user) and `ed25519.pub` (SPKI PEM, 0444, owned by root so that no principal can
//! chmod and rewrite the key everybody else verifies its signatures with).
//!
//! The private key is written to a fresh file created with O_EXCL|O_NOFOLLOW and mode 0400 by
//! root, `fchown`ed to its user through the same fd, filled and synced, and only then linked to
//! its final name (a hard link, which fails rather than replaces). So there is never a moment
//! when a half-written or foreign-readable key sits under the final name, and an existing key is
//! never overwritten. The protocol crate's key type reads the same PEM formats.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{fchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::apply::Change;
use super::plan::{PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};
use super::SetupError;

const PRIVATE_MODE: u32 = 0o400;
const PUBLIC_MODE: u32 = 0o444;

/// Makes sure `dir` holds a key pair owned by `uid:gid`; keeps an existing private key.
pub fn ensure_key_pair(dir: &Path, uid: u32, gid: u32) -> Result<Change, SetupError> {
    let key_path = dir.join(PRIVATE_KEY_FILE);
    let (key, key_change) = match open_existing(&key_path)? {
        Some(file) => {
            let key = parse_private(&key_path, file_text(&key_path, &file)?)?;
            (key, fix_file(&key_path, &file, uid, gid, PRIVATE_MODE)?)
        }
        None => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| SetupError::KeyEncode {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
            write_private(&key_path, pem.as_bytes(), uid, gid)?;
            (key, Change::Created)
        }
    };

    let pub_path = dir.join(PUBLIC_KEY_FILE);
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| SetupError::KeyEncode {
            path: pub_path.clone(),
            reason: e.to_string(),
        })?;
    let pub_change = match open_existing(&pub_path)? {
        Some(file) if file_text(&pub_path, &file)? == pub_pem => {
            fix_file(&pub_path, &file, 0, 0, PUBLIC_MODE)?
        }
        existing => {
            // Missing, or not the public half of the key we keep: derive it again.
            let tmp = pub_path.with_extension("pub.new");
            remove_stale(&tmp)?;
            write_new(&tmp, pub_pem.as_bytes(), 0, 0, PUBLIC_MODE)?;
            fs::rename(&tmp, &pub_path).map_err(|source| SetupError::KeyWrite {
                path: pub_path.clone(),
                source,
            })?;
            if existing.is_some() {
                Change::Fixed("public key rewritten from the private key".to_owned())
            } else {
                Change::Created
            }
        }
    };

    Ok(match (key_change, pub_change) {
        (Change::Created, _) => Change::Created,
        (Change::Unchanged, Change::Unchanged) => Change::Unchanged,
        (k, p) => Change::Fixed(
            [("private key", k), ("public key", p)]
                .into_iter()
                .filter(|(_, c)| *c != Change::Unchanged)
                .map(|(what, c)| format!("{what} {c}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    })
}

/// Reads a private key written by setup (PKCS#8 PEM).
pub fn read_private_key(path: &Path) -> Result<SigningKey, SetupError> {
    let text = fs::read_to_string(path).map_err(|source| SetupError::KeyRead {
        path: path.to_path_buf(),
        source,
    })?;
    parse_private(path, text)
}

/// Reads a public key written by setup (SPKI PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, SetupError> {
    let text = fs::read_to_string(path).map_err(|source| SetupError::KeyRead {
        path: path.to_path_buf(),
        source,
    })?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| SetupError::KeyParse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn parse_private(path: &Path, text: String) -> Result<SigningKey, SetupError> {
    SigningKey::from_pkcs8_pem(&text).map_err(|e| SetupError::KeyParse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Opens an existing key file without following a symlink; `None` when there is none.
fn open_existing(path: &Path) -> Result<Option<File>, SetupError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        // ELOOP: the name is a symlink, which setup never creates and never follows.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(SetupError::NotARegularFile(path.to_path_buf()))
        }
        Err(source) => {
            return Err(SetupError::KeyRead {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| SetupError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(SetupError::NotARegularFile(path.to_path_buf()));
    }
    Ok(Some(file))
}

fn file_text(path: &Path, mut file: &File) -> Result<String, SetupError> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| SetupError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(text)
}

/// Corrects owner and mode through the open fd (so a rename in between cannot redirect it).
fn fix_file(path: &Path, file: &File, uid: u32, gid: u32, mode: u32) -> Result<Change, SetupError> {
    let meta = file.metadata().map_err(|source| SetupError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    let mut fixes = Vec::new();
    if (meta.uid(), meta.gid()) != (uid, gid) {
        fchown(file, Some(uid), Some(gid)).map_err(|source| SetupError::Chown {
            path: path.to_path_buf(),
            source,
        })?;
        fixes.push(format!(
            "owner {}:{} -> {uid}:{gid}",
            meta.uid(),
            meta.gid()
        ));
    }
    let have = meta.mode() & 0o7777;
    if have != mode {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|source| SetupError::Chmod {
                path: path.to_path_buf(),
                source,
            })?;
        fixes.push(format!("mode {have:04o} -> {mode:04o}"));
    }
    Ok(if fixes.is_empty() {
        Change::Unchanged
    } else {
        Change::Fixed(fixes.join(", "))
    })
}

/// Writes `bytes` to the new file `path` (which must not exist), owned and moded before the
/// first byte lands.
fn write_new(path: &Path, bytes: &[u8], uid: u32, gid: u32, mode: u32) -> Result<(), SetupError> {
    let err = |source| SetupError::KeyWrite {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    fchown(&file, Some(uid), Some(gid)).map_err(|source| SetupError::Chown {
        path: path.to_path_buf(),
        source,
    })?;
    // Explicit, because the umask may have stripped bits from the create mode.
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|source| SetupError::Chmod {
            path: path.to_path_buf(),
            source,
        })?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Writes a private key under a temporary name, then hard-links it to `path`: the link fails
/// rather than replaces when a key appeared meanwhile, and `path` never names a partial key.
fn write_private(path: &Path, bytes: &[u8], uid: u32, gid: u32) -> Result<(), SetupError> {
    let tmp = path.with_extension("key.new");
    remove_stale(&tmp)?;
    write_new(&tmp, bytes, uid, gid, PRIVATE_MODE)?;
    let linked = fs::hard_link(&tmp, path);
    remove_stale(&tmp)?;
    linked.map_err(|source| SetupError::KeyWrite {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes a leftover temporary file from an interrupted run (`unlink` never follows a symlink).
fn remove_stale(path: &Path) -> Result<(), SetupError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SetupError::KeyWrite {
            path: path.to_path_buf(),
            source,
        }),
    }
}
