//! Unified diff parsing (git's extended headers included): for each file, its paths, modes,
//! binary flag, and the added and removed lines with their line numbers.

/// One file's part of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDiff {
    /// Path before the change (`None` for a new file).
    pub old_path: Option<String>,
    /// Path after the change (`None` for a deleted file).
    pub new_path: Option<String>,
    /// Mode before (octal, e.g. 0o100644), when the diff says.
    pub old_mode: Option<u32>,
    /// Mode after.
    pub new_mode: Option<u32>,
    /// Created by the change.
    pub is_new: bool,
    /// Deleted by the change.
    pub is_deleted: bool,
    /// Git reported a binary change.
    pub binary: bool,
    /// Added lines joined by `\n`.
    pub added: String,
    /// New-file line number of each added line.
    pub added_lines: Vec<u32>,
    /// Removed lines joined by `\n`.
    pub removed: String,
    /// Old-file line number of each removed line.
    pub removed_lines: Vec<u32>,
}

impl FileDiff {
    /// The path that names the file in findings: the new one, else the old one.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }

    /// Added line texts with their numbers.
    pub fn added_iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.added_lines
            .iter()
            .copied()
            .zip(self.added.split('\n'))
            .take(self.added_lines.len())
    }

    /// Removed line texts with their numbers.
    pub fn removed_iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.removed_lines
            .iter()
            .copied()
            .zip(self.removed.split('\n'))
            .take(self.removed_lines.len())
    }

    fn push_added(&mut self, n: u32, text: &str) {
        if !self.added_lines.is_empty() {
            self.added.push('\n');
        }
        self.added.push_str(text);
        self.added_lines.push(n);
    }

    fn push_removed(&mut self, n: u32, text: &str) {
        if !self.removed_lines.is_empty() {
            self.removed.push('\n');
        }
        self.removed.push_str(text);
        self.removed_lines.push(n);
    }
}

/// Parses a unified diff. Never fails: text that is not part of a file's diff is ignored.
pub fn parse(diff: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    let mut cur: Option<FileDiff> = None;
    let (mut old_no, mut new_no) = (0u32, 0u32);
    let (mut old_left, mut new_left) = (0u32, 0u32);
    let mut lines = diff.split('\n').peekable();
    while let Some(raw) = lines.next() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let in_hunk = old_left > 0 || new_left > 0;
        if in_hunk {
            if let Some(f) = cur.as_mut() {
                match line.as_bytes().first() {
                    Some(b'+') => {
                        f.push_added(new_no, &line[1..]);
                        new_no += 1;
                        new_left = new_left.saturating_sub(1);
                        continue;
                    }
                    Some(b'-') => {
                        f.push_removed(old_no, &line[1..]);
                        old_no += 1;
                        old_left = old_left.saturating_sub(1);
                        continue;
                    }
                    Some(b' ') | None => {
                        old_no += 1;
                        new_no += 1;
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                        continue;
                    }
                    Some(b'\\') => continue,
                    _ => {
                        old_left = 0;
                        new_left = 0;
                    }
                }
            }
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            files.extend(cur.take());
            let (a, b) = split_git_header(rest);
            cur = Some(FileDiff {
                old_path: a,
                new_path: b,
                ..FileDiff::default()
            });
        } else if line.starts_with("--- ") && lines.peek().is_some_and(|n| n.starts_with("+++ ")) {
            let old = header_path(&line[4..]);
            let new = lines.next().map(|n| header_path(&n[4..])).unwrap_or(None);
            let starts_new_file = cur
                .as_ref()
                .is_none_or(|f| !f.added_lines.is_empty() || !f.removed_lines.is_empty());
            if starts_new_file {
                files.extend(cur.take());
                cur = Some(FileDiff::default());
            }
            if let Some(f) = cur.as_mut() {
                f.old_path = old.clone();
                f.new_path = new.clone();
                if old.is_none() {
                    f.is_new = true;
                }
                if new.is_none() {
                    f.is_deleted = true;
                }
            }
        } else if let Some(h) = line.strip_prefix("@@ ") {
            if let Some((o, ol, n, nl)) = parse_hunk(h) {
                old_no = o;
                old_left = ol;
                new_no = n;
                new_left = nl;
            }
        } else if let Some(f) = cur.as_mut() {
            extended_header(f, line);
        }
    }
    files.extend(cur);
    files
}

fn extended_header(f: &mut FileDiff, line: &str) {
    if let Some(m) = line.strip_prefix("old mode ") {
        f.old_mode = u32::from_str_radix(m.trim(), 8).ok();
    } else if let Some(m) = line.strip_prefix("new mode ") {
        f.new_mode = u32::from_str_radix(m.trim(), 8).ok();
    } else if let Some(m) = line.strip_prefix("new file mode ") {
        f.new_mode = u32::from_str_radix(m.trim(), 8).ok();
        f.is_new = true;
        f.old_path = None;
    } else if let Some(m) = line.strip_prefix("deleted file mode ") {
        f.old_mode = u32::from_str_radix(m.trim(), 8).ok();
        f.is_deleted = true;
        f.new_path = None;
    } else if let Some(p) = line.strip_prefix("rename from ") {
        f.old_path = Some(unquote(p));
    } else if let Some(p) = line.strip_prefix("rename to ") {
        f.new_path = Some(unquote(p));
    } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
        f.binary = true;
    }
}

/// `-a,b +c,d` → (a, b, c, d); a missing count means 1.
fn parse_hunk(h: &str) -> Option<(u32, u32, u32, u32)> {
    let mut it = h.split_whitespace();
    let old = it.next()?.strip_prefix('-')?;
    let new = it.next()?.strip_prefix('+')?;
    let range = |s: &str| -> Option<(u32, u32)> {
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (o, ol) = range(old)?;
    let (n, nl) = range(new)?;
    Some((o, ol, n, nl))
}

/// Path from a `---`/`+++` line: `/dev/null` is none; `a/`/`b/` prefixes and a trailing
/// tab-separated timestamp are dropped.
fn header_path(s: &str) -> Option<String> {
    let s = s.split('\t').next().unwrap_or(s).trim_end();
    if s == "/dev/null" {
        return None;
    }
    let s = unquote(s);
    Some(strip_ab(&s).to_string())
}

fn strip_ab(s: &str) -> &str {
    s.strip_prefix("a/")
        .or_else(|| s.strip_prefix("b/"))
        .unwrap_or(s)
}

/// `a/x b/x` (or quoted forms). With unquoted paths containing spaces the split is ambiguous;
/// git writes the same path twice then, so the middle is used.
fn split_git_header(rest: &str) -> (Option<String>, Option<String>) {
    if rest.starts_with('"') {
        if let Some(end) = find_closing_quote(rest) {
            let a = unquote(&rest[..=end]);
            let b = unquote(rest[end + 1..].trim_start());
            return (
                Some(strip_ab(&a).to_string()),
                Some(strip_ab(&b).to_string()),
            );
        }
    }
    if rest.len() % 2 == 1 {
        let mid = rest.len() / 2;
        if rest.is_char_boundary(mid) && rest.as_bytes()[mid] == b' ' {
            let (a, b) = (&rest[..mid], &rest[mid + 1..]);
            if strip_ab(a) == strip_ab(b) {
                return (Some(strip_ab(a).to_string()), Some(strip_ab(b).to_string()));
            }
        }
    }
    match rest.split_once(" b/") {
        Some((a, b)) => (Some(strip_ab(a).to_string()), Some(b.to_string())),
        None => (None, None),
    }
}

fn find_closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Undoes git's C-style quoting of unusual paths.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut out: Vec<u8> = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            if c.is_ascii_digit() && i + 3 < b.len() + 1 {
                let oct = inner
                    .get(i + 1..i + 4)
                    .and_then(|o| u8::from_str_radix(o, 8).ok());
                if let Some(v) = oct {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            out.push(match c {
                b'n' => b'\n',
                b't' => b'\t',
                other => other,
            });
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
