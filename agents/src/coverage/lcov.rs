//! Reading lcov tracefiles (`SF:`, `DA:line,count`, `end_of_record`): line hit counts per source
//! file. Other records (functions, branches, LF/LH totals) are not needed for line coverage and
//! are skipped; the totals are recomputed from the `DA` lines rather than trusted.

use std::collections::BTreeMap;
use std::path::Path;

/// Line hit counts per source file, as the tracefile names the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lcov {
    /// File → (line → hits). A line listed twice (several test binaries) gets the sum.
    pub files: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// A tracefile line that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum LcovError {
    /// A `DA:` record outside `SF:` ... `end_of_record`.
    #[error("lcov line {line}: DA record outside a source-file section")]
    DaOutsideFile {
        /// 1-based line of the tracefile.
        line: usize,
    },
    /// A `DA:` record whose numbers do not parse.
    #[error("lcov line {line}: malformed DA record {text:?}")]
    BadDa {
        /// 1-based line of the tracefile.
        line: usize,
        /// The record.
        text: String,
    },
    /// Reading the tracefile.
    #[error("cannot read lcov file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Parses tracefile text.
pub fn parse(text: &str) -> Result<Lcov, LcovError> {
    let mut out = Lcov::default();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(sf) = line.strip_prefix("SF:") {
            current = Some(sf.to_string());
            out.files.entry(sf.to_string()).or_default();
        } else if line == "end_of_record" {
            current = None;
        } else if let Some(da) = line.strip_prefix("DA:") {
            let Some(file) = current.as_ref() else {
                return Err(LcovError::DaOutsideFile { line: i + 1 });
            };
            let mut parts = da.split(',');
            let bad = || LcovError::BadDa {
                line: i + 1,
                text: line.to_string(),
            };
            let n: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            // llvm-cov writes negative counts never, but gcov-derived files may write `-1`
            // for unexecutable lines; those are not instrumented lines.
            let count_text = parts.next().ok_or_else(bad)?;
            if count_text.starts_with('-') {
                continue;
            }
            let hits: u64 = count_text.parse().map_err(|_| bad())?;
            let entry = out
                .files
                .entry(file.clone())
                .or_default()
                .entry(n)
                .or_insert(0);
            *entry = entry.saturating_add(hits);
        }
    }
    Ok(out)
}

/// Reads and parses a tracefile.
pub fn read(path: &Path) -> Result<Lcov, LcovError> {
    let text = std::fs::read_to_string(path).map_err(|source| LcovError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

impl Lcov {
    /// The same data with file names made relative to `root` (`/`-separated), as diffs name them.
    /// Names outside `root` are kept as they are.
    pub fn relative_to(&self, root: &Path) -> Lcov {
        let files = self
            .files
            .iter()
            .map(|(name, lines)| {
                let rel = Path::new(name)
                    .strip_prefix(root)
                    .map(|p| {
                        p.components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|_| name.clone());
                (rel, lines.clone())
            })
            .collect();
        Lcov { files }
    }
}
