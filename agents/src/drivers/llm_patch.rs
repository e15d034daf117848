//! `apply_patch` for the `llm` driver: a unified diff of one or more files is split into its
//! per-file parts and each part is applied with `diffy` (exact context, as `git apply` without
//! fuzz). Done in-process rather than by running `git apply` in the sandbox: codegen needs no
//! program to execute, no `.git`, and every target path goes through the same confinement as
//! `write_file`.

/// A patch that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// No `--- ` / `+++ ` file header at all.
    #[error("apply_patch: no `--- a/path` / `+++ b/path` file header in the patch")]
    NoFiles,
    /// One file's part does not parse.
    #[error("apply_patch: the part for {path} does not parse: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Cause.
        source: diffy::ParsePatchError,
    },
    /// A hunk does not match the file.
    #[error("apply_patch: {path}: {source} (the context lines must match the file exactly; read it again)")]
    Apply {
        /// The file.
        path: String,
        /// Cause.
        source: diffy::ApplyError,
    },
    /// The patch edits a file that does not exist.
    #[error("apply_patch: {path} does not exist (use `--- /dev/null` to create it)")]
    Missing {
        /// The file.
        path: String,
    },
    /// The patch creates a file that exists.
    #[error("apply_patch: {path} already exists and the patch creates it from /dev/null")]
    Exists {
        /// The file.
        path: String,
    },
}

/// One file's new state: `None` deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Repository-relative path.
    pub path: String,
    /// New content, or `None` to delete.
    pub content: Option<String>,
}

/// One file's part of a multi-file diff.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part<'a> {
    /// Path from `---` (`None` for /dev/null).
    old: Option<String>,
    /// Path from `+++` (`None` for /dev/null).
    new: Option<String>,
    /// The text from the `---` line to the end of the part.
    text: &'a str,
}

/// `a/src/x.rs` → `src/x.rs`; `/dev/null` → None; a trailing tab and timestamp dropped.
fn header_path(rest: &str) -> Option<String> {
    let p = rest.split('\t').next().unwrap_or("").trim();
    if p == "/dev/null" {
        return None;
    }
    let p = p
        .strip_prefix("a/")
        .or_else(|| p.strip_prefix("b/"))
        .unwrap_or(p);
    Some(p.to_owned())
}

/// Splits `patch` at each `--- ` line that is followed by a `+++ ` line (the `diff --git` and
/// `index` lines between parts are dropped).
fn parts(patch: &str) -> Vec<Part<'_>> {
    let mut starts = Vec::new();
    let mut offset = 0;
    let lines: Vec<&str> = patch.split_inclusive('\n').collect();
    let mut offsets = Vec::with_capacity(lines.len());
    for l in &lines {
        offsets.push(offset);
        offset += l.len();
    }
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("--- ") && lines.get(i + 1).is_some_and(|n| n.starts_with("+++ ")) {
            starts.push(i);
        }
    }
    let mut out = Vec::new();
    for (k, &i) in starts.iter().enumerate() {
        let end_line = starts.get(k + 1).copied().unwrap_or(lines.len());
        // Up to the next part's `---`, less the `diff --git` / `index` lines just before it.
        let mut end = end_line;
        while end > i + 2
            && lines.get(end - 1).is_some_and(|l| {
                l.starts_with("diff ")
                    || l.starts_with("index ")
                    || l.starts_with("new file mode")
                    || l.starts_with("deleted file mode")
            })
        {
            end -= 1;
        }
        let from = offsets.get(i).copied().unwrap_or(0);
        let to = offsets.get(end).copied().unwrap_or(patch.len());
        let old = lines
            .get(i)
            .and_then(|l| header_path(l.trim_end_matches('\n').get(4..)?));
        let new = lines
            .get(i + 1)
            .and_then(|l| header_path(l.trim_end_matches('\n').get(4..)?));
        out.push(Part {
            old,
            new,
            text: patch.get(from..to).unwrap_or(""),
        });
    }
    out
}

/// The files a patch names (for the tool-call frame), in order.
pub fn paths(patch: &str) -> Vec<String> {
    parts(patch)
        .into_iter()
        .filter_map(|p| p.new.or(p.old))
        .collect()
}

/// The edits `patch` makes, reading each file's current content with `read` (`None`: it does not
/// exist). Nothing is written here; `read`'s error (a refused path) is passed through.
pub fn plan<E: From<PatchError>>(
    patch: &str,
    mut read: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Vec<Edit>, E> {
    let ps = parts(patch);
    if ps.is_empty() {
        return Err(PatchError::NoFiles.into());
    }
    let mut edits: Vec<Edit> = Vec::new();
    for p in ps {
        let Some(path) = p.new.clone().or_else(|| p.old.clone()) else {
            return Err(PatchError::NoFiles.into());
        };
        // A file patched twice in one diff sees its first edit.
        let current = match edits.iter().find(|e| e.path == path) {
            Some(e) => e.content.clone(),
            None => read(&path)?,
        };
        let base = match (&p.old, current) {
            (None, Some(_)) => return Err(PatchError::Exists { path }.into()),
            (None, None) => String::new(),
            (Some(_), Some(c)) => c,
            (Some(_), None) => return Err(PatchError::Missing { path }.into()),
        };
        let parsed = diffy::Patch::from_str(p.text).map_err(|source| PatchError::Parse {
            path: path.clone(),
            source,
        })?;
        let patched = diffy::apply(&base, &parsed).map_err(|source| PatchError::Apply {
            path: path.clone(),
            source,
        })?;
        let content = p.new.is_some().then_some(patched);
        edits.retain(|e| e.path != path);
        edits.push(Edit { path, content });
    }
    Ok(edits)
}
