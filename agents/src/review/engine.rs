//! The line scanner. One Aho-Corasick automaton holds every rule's keywords; it runs over the
//! whole buffer, and only a line where a keyword occurs is looked at again: an overlapping pass of
//! the same automaton over that line tells which rules are candidates, and only their regexes
//! run. Most lines of real code contain no keyword, so most bytes are touched once, by the
//! automaton's SIMD prefilter.

use super::finding::Finding;
use super::rules::{Category, Rule};
use super::secrets::{self, Check, PATTERNS};
use super::text::{self, TextRegexes, TextRule};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use base64::Engine as _;
use regex::bytes::Regex;
use std::sync::OnceLock;

/// Which rule families a scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Whole files: secrets and hidden characters only.
    Tree,
    /// Added lines of a diff: every line rule.
    Diff,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Secret(usize),
    Text(TextRule),
}

struct Automaton {
    ac: AhoCorasick,
    targets: Vec<Target>,
}

/// Everything compiled once per process.
pub struct Engine {
    tree: Automaton,
    diff: Automaton,
    secret_res: Vec<Regex>,
    text_res: TextRegexes,
}

/// The engine's tables did not compile (a bug in the tables, caught by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A secret regex.
    #[error("secret pattern {id} does not compile: {source}")]
    SecretRegex {
        /// Rule id.
        id: &'static str,
        /// Cause.
        #[source]
        source: regex::Error,
    },
    /// A text regex.
    #[error(transparent)]
    TextRegex(#[from] text::TextRegexError),
    /// The keyword automaton.
    #[error("keyword automaton does not build: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

fn build_automaton(mode: Mode) -> Result<Automaton, EngineError> {
    let mut kws: Vec<Vec<u8>> = Vec::new();
    let mut targets = Vec::new();
    for (i, p) in PATTERNS.iter().enumerate() {
        for k in p.keywords {
            kws.push(k.as_bytes().to_vec());
            targets.push(Target::Secret(i));
        }
    }
    for k in text::HIDDEN_KEYWORDS {
        kws.push(k.to_vec());
        targets.push(Target::Text(TextRule::Hidden));
    }
    if mode == Mode::Diff {
        for (rule, words) in text::KEYWORDS {
            for k in *words {
                kws.push(k.as_bytes().to_vec());
                targets.push(Target::Text(*rule));
            }
        }
    }
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(&kws)?;
    Ok(Automaton { ac, targets })
}

impl Engine {
    fn new() -> Result<Self, EngineError> {
        let secret_res = PATTERNS
            .iter()
            .map(|p| {
                Regex::new(&format!("(?-u){}", p.regex)).map_err(|source| {
                    EngineError::SecretRegex {
                        id: p.rule.id,
                        source,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine {
            tree: build_automaton(Mode::Tree)?,
            diff: build_automaton(Mode::Diff)?,
            secret_res,
            text_res: TextRegexes::new()?,
        })
    }

    /// The process-wide engine.
    pub fn get() -> Result<&'static Engine, &'static EngineError> {
        static ENGINE: OnceLock<Result<Engine, EngineError>> = OnceLock::new();
        ENGINE.get_or_init(Engine::new).as_ref()
    }
}

/// A buffer to scan: a whole file, or a diff's added lines joined by `\n` with `line_map[i]`
/// the new-file line number of the buffer's line `i`.
pub struct Doc<'a> {
    /// Repository-relative path.
    pub file: &'a str,
    /// The bytes.
    pub buf: &'a [u8],
    /// Line numbers of the buffer's lines, when they are not 1, 2, 3, ...
    pub line_map: Option<&'a [u32]>,
}

impl Doc<'_> {
    fn line_number(&self, idx: usize) -> u32 {
        match self.line_map {
            Some(map) => map.get(idx).copied().unwrap_or(0),
            None => u32::try_from(idx + 1).unwrap_or(u32::MAX),
        }
    }
}

/// Scans `doc`, appending findings of the enabled categories to `out`.
pub fn scan(
    engine: &Engine,
    doc: &Doc<'_>,
    mode: Mode,
    enabled: &dyn Fn(Category) -> bool,
    out: &mut Vec<Finding>,
) {
    let auto = match mode {
        Mode::Tree => &engine.tree,
        Mode::Diff => &engine.diff,
    };
    let buf = doc.buf;
    let mut pos = 0;
    let mut line_idx = 0usize;
    let mut counted = 0usize;
    let mut cands: Vec<u32> = Vec::new();
    while pos < buf.len() {
        let Some(m) = auto.ac.find(Input::new(buf).span(pos..buf.len())) else {
            break;
        };
        let ls = memchr::memrchr(b'\n', &buf[pos..m.start()]).map_or(pos, |i| pos + i + 1);
        let le = memchr::memchr(b'\n', &buf[m.start()..]).map_or(buf.len(), |i| m.start() + i);
        line_idx += memchr::memchr_iter(b'\n', &buf[counted..ls]).count();
        counted = ls;
        cands.clear();
        for om in auto.ac.find_overlapping_iter(&buf[ls..le]) {
            cands.push(om.pattern().as_u32());
        }
        cands.sort_unstable();
        cands.dedup();
        scan_line(engine, auto, doc, ls, le, line_idx, &cands, enabled, out);
        pos = le + 1;
    }
}

#[allow(clippy::too_many_arguments)] // the line's coordinates travel together; a struct adds nothing
fn scan_line(
    engine: &Engine,
    auto: &Automaton,
    doc: &Doc<'_>,
    ls: usize,
    le: usize,
    line_idx: usize,
    cands: &[u32],
    enabled: &dyn Fn(Category) -> bool,
    out: &mut Vec<Finding>,
) {
    let line = &doc.buf[ls..le];
    let lineno = doc.line_number(line_idx);
    let mut secrets_idx: Vec<usize> = Vec::new();
    let mut texts: Vec<TextRule> = Vec::new();
    for &c in cands {
        match auto.targets.get(c as usize) {
            Some(Target::Secret(i)) => secrets_idx.push(*i),
            Some(Target::Text(t)) => texts.push(*t),
            None => {}
        }
    }
    secrets_idx.sort_unstable();
    secrets_idx.dedup();
    texts.dedup();
    if enabled(Category::Secrets) {
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for i in secrets_idx {
            let (Some(p), Some(re)) = (PATTERNS.get(i), engine.secret_res.get(i)) else {
                continue;
            };
            for caps in re.captures_iter(line) {
                let Some(whole) = caps.get(0) else { continue };
                let v = caps
                    .name("v")
                    .or_else(|| caps.iter().skip(1).flatten().next())
                    .unwrap_or(whole);
                let span = (v.start(), v.end());
                if taken.iter().any(|&(s, e)| span.0 < e && s < span.1) {
                    continue;
                }
                let value: &[u8] = match p.check {
                    Check::PrivateKey => match private_key_block(doc.buf, ls + whole.start()) {
                        Some(block) => block,
                        None => continue,
                    },
                    _ => v.as_bytes(),
                };
                if !confirmed(p.check, value, &caps) {
                    continue;
                }
                taken.push(span);
                out.push(Finding::new(
                    &p.rule,
                    doc.file,
                    lineno,
                    format!(
                        "{} ({} characters, value withheld)",
                        p.rule.name,
                        value.len()
                    ),
                    value,
                ));
            }
        }
    }
    for t in texts {
        let rule = t.rule();
        if !enabled(rule.category) {
            continue;
        }
        text::confirm(
            t,
            line,
            &engine.text_res,
            &mut |r: &'static Rule, msg, ev| {
                out.push(Finding::new(r, doc.file, lineno, msg, ev));
            },
        );
    }
}

fn confirmed(check: Check, value: &[u8], caps: &regex::bytes::Captures<'_>) -> bool {
    match check {
        Check::Plain => !secrets::is_placeholder(value),
        Check::Entropy(min) => {
            !secrets::is_placeholder(value) && secrets::passes_entropy(value, min)
        }
        Check::EntropyLetters(min) => {
            !secrets::is_placeholder(value) && secrets::shannon_entropy(value) >= min
        }
        Check::PrivateKey => !is_placeholder_key(value),
        Check::Jwt => jwt_is_real(value),
        Check::UrlPassword => {
            let user = caps.name("u").map_or(&b""[..], |m| m.as_bytes());
            !secrets::is_placeholder_password(user, value)
        }
    }
}

/// From a `-----BEGIN ... PRIVATE KEY-----` header at `start`, the whole block through its END
/// line, if a body of at least 64 base64 characters sits between them (within 64 KiB).
fn private_key_block(buf: &[u8], start: usize) -> Option<&[u8]> {
    let window = &buf[start..buf.len().min(start + 64 * 1024)];
    let header_end = memchr::memmem::find(&window[10..], b"-----")? + 15;
    let end_rel = memchr::memmem::find(&window[header_end..], b"-----END")? + header_end;
    let body = &window[header_end..end_rel];
    let b64 = body
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
        .count();
    if b64 < 64 {
        return None;
    }
    let tail = memchr::memmem::find(&window[end_rel + 8..], b"-----")
        .map_or(window.len(), |i| end_rel + 8 + i + 5);
    Some(&window[..tail])
}

fn is_placeholder_key(block: &[u8]) -> bool {
    let lower = block.to_ascii_lowercase();
    [
        "example",
        "...",
        "xxxx",
        "<",
        "your",
        "redacted",
        "placeholder",
    ]
    .iter()
    .any(|m| memchr::memmem::find(&lower, m.as_bytes()).is_some())
}

/// A JWT counts when its header decodes to JSON naming an algorithm; the jwt.io sample token
/// (subject 1234567890, "John Doe") and placeholders do not.
fn jwt_is_real(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return false;
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(header) = engine.decode(h) else {
        return false;
    };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return false;
    };
    if header.get("alg").is_none() {
        return false;
    }
    let payload = engine.decode(p).unwrap_or_default();
    let payload = String::from_utf8_lossy(&payload).to_ascii_lowercase();
    let example = payload.contains("1234567890") && payload.contains("john doe");
    !example
        && !["example", "dummy", "placeholder", "your-"]
            .iter()
            .any(|m| payload.contains(m))
}
