//! Scanning plain files: a directory walk (skipping .git, target, node_modules), files read and
//! scanned by one worker per core, and the comparison of two trees into file diffs.

use super::diff::FileDiff;
use super::engine::{self, Doc, Mode};
use super::finding::{normalize, Finding};
use super::rules::{self, Category};
use super::{engine_or_finding, paths, FileSource, ReviewError, ScanContext};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const SKIP_DIRS: [&str; 3] = [".git", "target", "node_modules"];

/// Files under `root` as (absolute path, `/`-separated relative path), sorted. Symbolic links
/// are not followed.
fn walk(root: &Path) -> Result<Vec<(PathBuf, String)>, ReviewError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|source| ReviewError::Walk {
            path: dir.clone(),
            source,
        })?;
        for entry in rd {
            let entry = entry.map_err(|source| ReviewError::Walk {
                path: dir.clone(),
                source,
            })?;
            let ft = entry.file_type().map_err(|source| ReviewError::Walk {
                path: entry.path(),
                source,
            })?;
            let path = entry.path();
            if ft.is_dir() {
                let name = entry.file_name();
                if !SKIP_DIRS.iter().any(|s| name == *s) {
                    stack.push(path);
                }
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((path, rel));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Binary by git's own test: a NUL byte in the first 8000 bytes.
pub fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(8000)]).is_some()
}

/// Scans every file under `root` (or `root` itself if it is a file) for secrets and hidden
/// characters, and, when the context has an allowlist, file types. Binary files are skipped.
pub fn scan_tree(root: &Path, ctx: &ScanContext) -> Result<Vec<Finding>, ReviewError> {
    let mut out = Vec::new();
    let Some(engine) = engine_or_finding(&mut out) else {
        return Ok(out);
    };
    let files = if root.is_file() {
        let name = root
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        vec![(root.to_path_buf(), name)]
    } else {
        walk(root)?
    };
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut local = Vec::new();
                let enabled = |c: Category| ctx.enabled(c);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((abs, rel)) = files.get(i) else {
                        break;
                    };
                    if enabled(Category::Files)
                        && !paths::extension_allowed(rel, &ctx.allowed_extensions)
                    {
                        local.push(Finding::new(
                            &rules::FILE_TYPE,
                            rel,
                            0,
                            format!("{rel}: file type not in the policy allowlist"),
                            rel.as_bytes(),
                        ));
                    }
                    match std::fs::read(abs) {
                        Ok(bytes) if !is_binary(&bytes) => {
                            let doc = Doc {
                                file: rel,
                                buf: &bytes,
                                line_map: None,
                            };
                            engine::scan(engine, &doc, Mode::Tree, &enabled, &mut local);
                        }
                        Ok(_) => {}
                        Err(e) => local.push(Finding::new(
                            &rules::SCAN_UNREADABLE,
                            rel,
                            0,
                            format!("{rel} could not be read: {e}"),
                            rel.as_bytes(),
                        )),
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r.extend(local);
                }
            });
        }
    });
    out.extend(results.into_inner().unwrap_or_else(|p| p.into_inner()));
    normalize(&mut out);
    Ok(out)
}

fn mode_of(path: &Path) -> Option<u32> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        return Some(0o120000);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(if meta.permissions().mode() & 0o111 != 0 {
            0o100755
        } else {
            0o100644
        })
    }
    #[cfg(not(unix))]
    {
        Some(0o100644)
    }
}

/// Lines of `new` not matched by an equal line of `old` (multiset difference), in order, with
/// 1-based numbers.
fn line_delta(old: &str, new: &str, f: &mut FileDiff, added: bool) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in old.lines() {
        *counts.entry(l).or_default() += 1;
    }
    for (i, l) in new.lines().enumerate() {
        match counts.get_mut(l) {
            Some(c) if *c > 0 => *c -= 1,
            _ => {
                let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
                let (buf, nums) = if added {
                    (&mut f.added, &mut f.added_lines)
                } else {
                    (&mut f.removed, &mut f.removed_lines)
                };
                if !nums.is_empty() {
                    buf.push('\n');
                }
                buf.push_str(l);
                nums.push(n);
            }
        }
    }
}

/// The file diffs that turn tree `before` into tree `after`.
pub fn diff_trees(before: &Path, after: &Path) -> Result<Vec<FileDiff>, ReviewError> {
    let list = |root: &Path| -> Result<BTreeMap<String, PathBuf>, ReviewError> {
        if !root.exists() {
            return Ok(BTreeMap::new());
        }
        Ok(walk(root)?.into_iter().map(|(a, r)| (r, a)).collect())
    };
    let (b, a) = (list(before)?, list(after)?);
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    for rel in keys {
        let read = |p: Option<&PathBuf>| -> Result<Option<Vec<u8>>, ReviewError> {
            p.map(|p| {
                std::fs::read(p).map_err(|source| ReviewError::Walk {
                    path: p.clone(),
                    source,
                })
            })
            .transpose()
        };
        let (ob, nb) = (read(b.get(rel))?, read(a.get(rel))?);
        let (om, nm) = (
            b.get(rel).and_then(|p| mode_of(p)),
            a.get(rel).and_then(|p| mode_of(p)),
        );
        if ob == nb && om == nm {
            continue;
        }
        let mut f = FileDiff {
            old_path: ob.as_ref().map(|_| rel.clone()),
            new_path: nb.as_ref().map(|_| rel.clone()),
            old_mode: om,
            new_mode: nm,
            is_new: ob.is_none(),
            is_deleted: nb.is_none(),
            ..FileDiff::default()
        };
        let binary = ob.as_deref().is_some_and(is_binary) || nb.as_deref().is_some_and(is_binary);
        if binary {
            f.binary = true;
        } else {
            let old = String::from_utf8_lossy(ob.as_deref().unwrap_or_default()).into_owned();
            let new = String::from_utf8_lossy(nb.as_deref().unwrap_or_default()).into_owned();
            line_delta(&old, &new, &mut f, true);
            line_delta(&new, &old, &mut f, false);
        }
        out.push(f);
    }
    Ok(out)
}

/// File contents from two directories.
pub struct DirSource {
    before: PathBuf,
    after: PathBuf,
}

impl DirSource {
    /// Reads `before/<path>` and `after/<path>`.
    pub fn new(before: &Path, after: &Path) -> Self {
        DirSource {
            before: before.to_path_buf(),
            after: after.to_path_buf(),
        }
    }
}

/// Joins a repository-relative path under `root`, refusing `..` and absolute components so a
/// crafted diff cannot make the scan read outside the tree.
fn contained(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let ok = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then(|| root.join(p))
}

impl FileSource for DirSource {
    fn before(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(contained(&self.before, path)?).ok()
    }
    fn after(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(contained(&self.after, path)?).ok()
    }
}
