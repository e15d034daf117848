//! Loading the YAML documents people write, with errors a platform owner can act on:
//! `roles.yaml:31:5: roles.codegen.limts: unknown field `limts`, expected one of ...`.
//!
//! serde-saphyr gives the location of a parse error; `serde_path_to_error` wraps its deserializer
//! (through `with_deserializer_from_str`) to give the field path. Errors found after parsing, by
//! validation, are located by looking their field path up in the document (`locate`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::config::{ConfigError, ThreadConfig};
use crate::fr::{is_fr_id, Fr, FrError};
use crate::locate::locate;
use crate::roles::{RolesError, RolesFile};

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Formats `path[:line:col]`.
struct At<'a>(&'a Path, Option<Position>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(p) => write!(f, "{}:{p}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// A document that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not UTF-8.
    #[error("{}: not UTF-8 text (first invalid byte here); save the file as UTF-8", At(path, Some(*at)))]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        at: Position,
        /// The decoder's error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// The YAML does not parse into the document's shape.
    #[error("{}: {}{message}", At(path, *at), field_prefix(field))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where, when known.
        at: Option<Position>,
        /// Field path, e.g. `roles.codegen.limts`; empty at the document root.
        field: String,
        /// What is wrong, without the location (that is in `at`).
        message: String,
        /// The parser's error (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// roles.yaml parses but is not a usable policy.
    #[error("{}: {source}", At(path, *at))]
    Roles {
        /// The file.
        path: PathBuf,
        /// Where the offending field is, when found.
        at: Option<Position>,
        /// What is wrong.
        #[source]
        source: Box<RolesError>,
    },
    /// The FR parses but cannot be run.
    #[error("{}: {source}", At(path, *at))]
    Fr {
        /// The file.
        path: PathBuf,
        /// Where the offending field is, when found.
        at: Option<Position>,
        /// What is wrong.
        #[source]
        source: Box<FrError>,
    },
    /// config.yaml parses but cannot be used.
    #[error("{}: {source}", At(path, *at))]
    Config {
        /// The file.
        path: PathBuf,
        /// Where the offending field is, when found.
        at: Option<Position>,
        /// What is wrong.
        #[source]
        source: Box<ConfigError>,
    },
    /// FR, config.yaml and roles.yaml do not combine: config.yaml loosens a limit, or a test
    /// command is not one the test-runner may run. `path` is the file holding the value.
    #[error("{}: {}", At(path, *at), merge_detail(source))]
    Merge {
        /// The file holding the offending value.
        path: PathBuf,
        /// Where in it, when found.
        at: Option<Position>,
        /// What is wrong.
        #[source]
        source: Box<crate::merge::MergeError>,
    },
    /// The FR id is malformed.
    #[error("`{id}` is not an FR id (FR-<number>)")]
    BadFrId {
        /// The id asked for.
        id: String,
    },
    /// No file `<id>.yaml` under the repository.
    #[error("{}: no {id}.yaml found (searched everywhere except .git, target and node_modules)", root.display())]
    FrNotFound {
        /// The repository root.
        root: PathBuf,
        /// The id.
        id: String,
    },
    /// More than one file `<id>.yaml`.
    #[error("{id} is ambiguous: found {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    FrAmbiguous {
        /// The id.
        id: String,
        /// Every match.
        paths: Vec<PathBuf>,
    },
}

/// A merge error's text without its leading `file: ` (the location prefix names the file).
fn merge_detail(e: &crate::merge::MergeError) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((file, rest)) if file.ends_with(".yaml") => rest.to_owned(),
        _ => text,
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl LoadError {
    /// Where in the file, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            LoadError::NotUtf8 { at, .. } => Some(*at),
            LoadError::Parse { at, .. }
            | LoadError::Roles { at, .. }
            | LoadError::Fr { at, .. }
            | LoadError::Config { at, .. }
            | LoadError::Merge { at, .. } => *at,
            _ => None,
        }
    }
}

/// Reads a file as UTF-8, locating the first invalid byte otherwise.
pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let source = e.utf8_error();
        let bytes = e.as_bytes();
        let valid = &bytes[..source.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Column in characters, as an editor shows it.
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count() as u64
            + 1;
        LoadError::NotUtf8 {
            path: path.to_owned(),
            at: Position { line, column },
            source,
        }
    })
}

/// Parses `text` as a `T`, with the field path and location of the first error.
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, LoadError> {
    // A valid document, the common case, parses without the path tracking (a third of the cost
    // of every `sandbox exec`'s policy load); only a failure is parsed again to locate it.
    if let Ok(value) = serde_saphyr::from_str::<T>(text) {
        return Ok(value);
    }
    let mut field = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|source| {
        let inner = source.without_snippet();
        let at = inner.location().and_then(|l| {
            (l.line() > 0).then_some(Position {
                line: l.line(),
                column: l.column(),
            })
        });
        let field = if field == "." { String::new() } else { field };
        let field = match at {
            Some(at) => crate::locate::fill_unknown_keys(text, &field, at),
            None => field,
        };
        LoadError::Parse {
            path: path.to_owned(),
            at,
            message: crate::locate::plain_message(inner),
            field,
            source: Box::new(source),
        }
    })
}

/// Loads and validates roles.yaml.
pub fn load_roles(path: &Path) -> Result<RolesFile, LoadError> {
    load_roles_text(path, &read_text(path)?)
}

/// Parses and validates roles.yaml's `text` (read from `path`, which errors name).
pub(crate) fn load_roles_text(path: &Path, text: &str) -> Result<RolesFile, LoadError> {
    let roles: RolesFile = parse_yaml(path, text)?;
    roles.validate().map_err(|source| LoadError::Roles {
        path: path.to_owned(),
        at: locate(text, &source.field()),
        source: Box::new(source),
    })?;
    Ok(roles)
}

/// Loads and validates an FR; its id must match its file name.
pub fn load_fr(path: &Path) -> Result<Fr, LoadError> {
    let text = read_text(path)?;
    let fr: Fr = parse_yaml(path, &text)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    fr.validate(file_name.as_deref())
        .map_err(|source| LoadError::Fr {
            path: path.to_owned(),
            at: locate(&text, &source.field()),
            source: Box::new(source),
        })?;
    Ok(fr)
}

/// Loads and validates a config.yaml (comparisons with roles.yaml and the FR are in `merge`).
pub fn load_config(path: &Path) -> Result<ThreadConfig, LoadError> {
    let text = read_text(path)?;
    let config: ThreadConfig = parse_yaml(path, &text)?;
    config.validate().map_err(|source| LoadError::Config {
        path: path.to_owned(),
        at: locate(&text, &source.field()),
        source: Box::new(source),
    })?;
    Ok(config)
}

/// The thread config next to an FR: `config.yaml` in the FR's directory, or the default (no
/// overrides) when there is none.
pub fn load_config_for(fr_path: &Path) -> Result<ThreadConfig, LoadError> {
    let path = fr_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("config.yaml");
    if path.exists() {
        load_config(&path)
    } else {
        Ok(ThreadConfig::default())
    }
}

/// Directories never searched for FRs.
const SKIP_DIRS: [&str; 3] = [".git", "target", "node_modules"];

/// Every `FR-<n>.yaml` under `repo_root`, sorted, skipping `.git`, `target` and `node_modules`.
/// Symbolic links are not followed (a link cannot pull files from outside the repository in);
/// unreadable directories are skipped.
pub fn find_frs(repo_root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo_root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                if !SKIP_DIRS.contains(&name.as_ref()) {
                    stack.push(entry.path());
                }
            } else if ft.is_file() && name.strip_suffix(".yaml").is_some_and(is_fr_id) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// The path of `FR-<n>.yaml` under `repo_root`; an error if there is none or more than one.
pub fn find_fr(repo_root: &Path, id: &str) -> Result<PathBuf, LoadError> {
    if !is_fr_id(id) {
        return Err(LoadError::BadFrId { id: id.to_owned() });
    }
    let file = format!("{id}.yaml");
    let mut matches: Vec<PathBuf> = find_frs(repo_root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == file))
        .collect();
    match matches.len() {
        0 => Err(LoadError::FrNotFound {
            root: repo_root.to_owned(),
            id: id.to_owned(),
        }),
        1 => Ok(matches.remove(0)),
        _ => Err(LoadError::FrAmbiguous {
            id: id.to_owned(),
            paths: matches,
        }),
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
