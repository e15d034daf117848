//! Line rules other than secrets: network endpoints, suppression pragmas, text aimed at the
//! reviewer, hidden Unicode, disabled tests, assertions that cannot fail, hooks and persistence
//! commands. Like the secret patterns, each has prefilter keywords and a confirming regex.

use super::rules::{self, Rule};
use regex::bytes::Regex;

/// A non-secret line rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextRule {
    /// URL to a non-local host.
    NetUrl,
    /// Network API call.
    NetCall,
    /// Secret-scanner allowlist pragma.
    PragmaSecret,
    /// Security-lint suppression.
    PragmaLint,
    /// Phrase addressed to an AI or the reviewer.
    Inject,
    /// Zero-width, tag or bidi characters.
    Hidden,
    /// Disabled or narrowed test.
    TestIgnore,
    /// Assertion that cannot fail.
    TestTrivial,
    /// `core.hooksPath`.
    HooksPath,
    /// crontab, systemctl enable, writes to shell rc files.
    PersistCmd,
}

impl TextRule {
    /// The rule it reports (Hidden reports two; this is the invisible one).
    pub fn rule(self) -> &'static Rule {
        match self {
            TextRule::NetUrl => &rules::NET_URL,
            TextRule::NetCall => &rules::NET_CALL,
            TextRule::PragmaSecret => &rules::PRAGMA_SECRET,
            TextRule::PragmaLint => &rules::PRAGMA_LINT,
            TextRule::Inject => &rules::INJECT_PHRASE,
            TextRule::Hidden => &rules::INJECT_INVISIBLE,
            TextRule::TestIgnore => &rules::TEST_IGNORED,
            TextRule::TestTrivial => &rules::TEST_TRIVIAL_ASSERT,
            TextRule::HooksPath => &rules::GIT_HOOKS,
            TextRule::PersistCmd => &rules::PERSIST_COMMAND,
        }
    }
}

/// Prefilter keywords of each text rule (ASCII case-insensitive).
pub const KEYWORDS: &[(TextRule, &[&str])] = &[
    (
        TextRule::NetUrl,
        &["http://", "https://", "ws://", "wss://", "ftp://"],
    ),
    (
        TextRule::NetCall,
        &[
            "TcpStream::connect",
            "UdpSocket::bind",
            "reqwest::",
            "ureq::",
            "hyper::Client",
            "curl ",
            "wget ",
            "fetch(",
            "fetch (",
            "XMLHttpRequest",
            "requests.",
            "urllib.request",
            "urlopen",
            "http.client",
            "socket.connect",
            "socket.create_connection",
            "net.Dial",
            "axios",
            "Invoke-WebRequest",
            "/dev/tcp/",
            "WebSocket(",
            "http.get",
            "https.get",
            "http.request",
            "https.request",
            "Net::HTTP",
        ],
    ),
    (
        TextRule::PragmaSecret,
        &[
            "gitleaks:allow",
            "allowlist secret",
            "trufflehog:ignore",
            "detect-secrets",
        ],
    ),
    (
        TextRule::PragmaLint,
        &["nosec", "noqa", "nosemgrep", "eslint-disable", "allow("],
    ),
    (
        TextRule::Inject,
        &[
            "ignore previous",
            "ignore all",
            "ignore the",
            "ignore any",
            "ignore prior",
            "ignore above",
            "ignore earlier",
            "ignore your",
            "disregard",
            "forget previous",
            "forget all",
            "forget the",
            "forget prior",
            "forget your",
            "as an ai",
            "as a language model",
            "as a large language",
            "reviewer",
            "assistant",
            "llm",
            "system prompt",
            "do not flag",
            "don't flag",
            "do not report",
            "never flag",
            "mark this as",
            "mark it as",
            "you are now",
            "security review",
            "dear ai",
            "note to ai",
            "attention ai",
        ],
    ),
    (
        TextRule::TestIgnore,
        &[
            "#[ignore",
            ".skip",
            "xit",
            "xdescribe",
            "xtest",
            "pytest.mark.skip",
            "unittest.skip",
            "pytest.skip",
            "t.Skip",
            "@Disabled",
            "@Ignore",
            ".only",
        ],
    ),
    (TextRule::TestTrivial, &["assert", "expect("]),
    (TextRule::HooksPath, &["hooksPath"]),
    (
        TextRule::PersistCmd,
        &[
            "crontab",
            "systemctl",
            "launchctl",
            "update-rc.d",
            "/etc/cron",
            ".bashrc",
            ".zshrc",
            ".bash_profile",
            ".profile",
            "autostart",
            "LaunchAgents",
        ],
    ),
];

/// Byte sequences of hidden characters: zero-width (U+200B–200D, U+2060–2064, U+FEFF, U+180E),
/// bidi controls (U+202A–202E, U+2066–2069) and the first three bytes of Unicode tags
/// (U+E0000–E007F are F3 A0 80 xx and F3 A0 81 xx).
pub const HIDDEN_KEYWORDS: &[&[u8]] = &[
    "\u{200B}".as_bytes(),
    "\u{200C}".as_bytes(),
    "\u{200D}".as_bytes(),
    "\u{2060}".as_bytes(),
    "\u{2061}".as_bytes(),
    "\u{2062}".as_bytes(),
    "\u{2063}".as_bytes(),
    "\u{2064}".as_bytes(),
    "\u{FEFF}".as_bytes(),
    "\u{180E}".as_bytes(),
    "\u{202A}".as_bytes(),
    "\u{202B}".as_bytes(),
    "\u{202C}".as_bytes(),
    "\u{202D}".as_bytes(),
    "\u{202E}".as_bytes(),
    "\u{2066}".as_bytes(),
    "\u{2067}".as_bytes(),
    "\u{2068}".as_bytes(),
    "\u{2069}".as_bytes(),
    &[0xF3, 0xA0, 0x80],
    &[0xF3, 0xA0, 0x81],
];

/// Confirming regexes, compiled once.
#[derive(Debug)]
pub struct TextRegexes {
    url: Regex,
    call: Regex,
    lint: Regex,
    inject: Regex,
    ignore: Regex,
    trivial_true: Regex,
    trivial_eq: Regex,
    persist: Regex,
}

/// A regex in the table below did not compile (a bug caught by the unit tests).
#[derive(Debug, thiserror::Error)]
#[error("text rule regex {name} does not compile: {source}")]
pub struct TextRegexError {
    name: &'static str,
    #[source]
    source: regex::Error,
}

fn compile(name: &'static str, re: &str) -> Result<Regex, TextRegexError> {
    Regex::new(re).map_err(|source| TextRegexError { name, source })
}

impl TextRegexes {
    /// Compiles every confirming regex.
    pub fn new() -> Result<Self, TextRegexError> {
        Ok(TextRegexes {
            url: compile(
                "url",
                r"(?i-u)\b(?:https?|wss?|ftp)://(?:[^\s/@'`]*@)?(?P<h>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*)",
            )?,
            call: compile(
                "call",
                r"(?-u)TcpStream::connect|UdpSocket::bind|reqwest::|ureq::|hyper::Client|\bcurl\s|\bwget\s|(?:^|[^\w.])fetch\s*\(|XMLHttpRequest|\brequests\.(?:get|post|put|patch|delete|head|request|Session)\b|urllib\.request|urlopen\s*\(|http\.client|socket\.(?:connect|create_connection)|net\.Dial|\baxios\b|Invoke-WebRequest|/dev/tcp/|WebSocket\s*\(|\bhttps?\.(?:get|request)\s*\(|Net::HTTP",
            )?,
            lint: compile(
                "lint",
                r"(?-u)\bnosec\b|#\s*noqa\s*:[^\n]*\bS\d{3}|nosemgrep|eslint-disable[^\n]*(?:security|no-eval|no-implied-eval|no-new-func|no-script-url|detect-)|#!?\[allow\([^\]]*(?:unsafe_code|clippy::(?:undocumented_unsafe_blocks|multiple_unsafe_ops_per_block|unwrap_used|expect_used|panic|indexing_slicing|mem_forget|transmute_\w+|cast_ptr_alignment|not_unsafe_ptr_arg_deref|disallowed_\w+|suspicious\w*|unsafe_\w+))",
            )?,
            inject: compile(
                "inject",
                r"(?i-u)\b(?:ignore|disregard|forget)\s+(?:(?:all|any|the|your|of|these)\s+)*(?:previous|prior|above|earlier|preceding|system|former)\s+(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)|\bas an? (?:ai|a\.i\.|llm)\b|\bas a (?:large )?language model\b|\b(?:dear|note to(?: the)?|attention|hey|hi)\s*,?\s+(?:ai|llm|model|assistant|reviewer|security reviewer|claude|gpt|chatgpt|copilot)\b|\b(?:ai|llm|model|assistant|reviewer|scanner)s?\b.{0,40}\b(?:must|should|shall|will|please)\s+(?:approve|ignore|skip|not\s+(?:flag|report|mention)|mark)|\breviewer\s*[:,]\s*(?:please\s+)?(?:approve|lgtm|ignore|skip|this is safe|safe|accept)|\bsecurity[ -]review(?:er)?\s*[:,]\s*(?:this|it|the (?:code|change|diff))?\s*(?:is|looks|was)\s+(?:safe|fine|ok|okay|clean|approved|benign)|\b(?:do not|don't|never)\s+(?:flag|report|mention)\s+(?:this|it|these|the)\b|\byou are now\b|\bsystem prompt\b|\bmark (?:this|it) as (?:safe|approved|clean|benign)\b",
            )?,
            ignore: compile(
                "ignore",
                r#"(?-u)#\[ignore\b|(?:^|[^\w.$])(?:it|describe|test|context|suite)\.(?:skip|only)\s*\(\s*['"`]|(?:^|[^\w.$])x(?:it|describe|test)\s*\(\s*['"`]|@pytest\.mark\.skip|@unittest\.skip|\bpytest\.skip\s*\(|\bt\.Skip(?:Now|f)?\s*\(|@Disabled\b|@Ignore\b"#,
            )?,
            trivial_true: compile(
                "trivial_true",
                r"(?-u)\bassert!\s*\(\s*true\s*[,)]|\bassert\s+(?:True|1)\s*(?:$|#|;)|\bassertTrue\s*\(\s*(?:True|true)\s*\)|\bexpect\s*\(\s*(?:true|1)\s*\)\s*\.\s*(?:toBe|toEqual|toBeTruthy)\s*\(\s*(?:true|1)?\s*\)|\bassert\.ok\s*\(\s*true\s*\)",
            )?,
            trivial_eq: compile(
                "trivial_eq",
                r"(?-u)\b(?:assert_eq!|assertEqual|assertEquals|assert_equal|assert\.equal|assert\.strictEqual|assert\.deepEqual)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*[,)]|\bassert!?\s*\(?\s*([\w.]+)\s*==\s*([\w.]+)\s*(?:[,)]|$)",
            )?,
            persist: compile(
                "persist",
                r"(?-u)\bcrontab\b|systemctl\s+(?:--user\s+)?enable|launchctl\s+(?:load|bootstrap)|update-rc\.d|/etc/cron|(?:>>|\bwrite|\bappend|\bopen)[^\n]{0,80}(?:\.bashrc|\.zshrc|\.bash_profile|\.profile\b|/autostart/|LaunchAgents)|(?:\.bashrc|\.zshrc|\.bash_profile|\.profile\b)[^\n]{0,40}(?:>>|write|append|'a')",
            )?,
        })
    }
}

/// Hosts that are not endpoints: loopback and documentation names.
pub fn is_local_or_example_host(host: &[u8]) -> bool {
    let h = host.to_ascii_lowercase();
    let h = h.as_slice();
    let ends = |suffix: &[u8]| h.ends_with(suffix);
    h == b"localhost"
        || h.starts_with(b"127.")
        || h == b"[::1]"
        || h == b"0.0.0.0"
        || h == b"example.com"
        || h == b"example.org"
        || h == b"example.net"
        || ends(b".example.com")
        || ends(b".example.org")
        || ends(b".example.net")
        || ends(b".localhost")
        || ends(b".invalid")
        || ends(b".example")
        || ends(b".test")
}

/// Runs `rule`'s confirmation on `line`; `emit(rule, message, evidence)` for each finding.
pub fn confirm(
    rule: TextRule,
    line: &[u8],
    res: &TextRegexes,
    emit: &mut dyn FnMut(&'static Rule, String, &[u8]),
) {
    match rule {
        TextRule::NetUrl => {
            for c in res.url.captures_iter(line) {
                if let Some(h) = c.name("h") {
                    if !is_local_or_example_host(h.as_bytes()) {
                        let host = String::from_utf8_lossy(h.as_bytes());
                        emit(rule.rule(), format!("URL to host {host}"), h.as_bytes());
                    }
                }
            }
        }
        TextRule::NetCall => {
            if contains_local(line) {
                return;
            }
            if let Some(m) = res.call.find(line) {
                let what = String::from_utf8_lossy(m.as_bytes()).trim().to_string();
                emit(rule.rule(), format!("network call `{what}`"), m.as_bytes());
            }
        }
        TextRule::PragmaSecret => emit(
            rule.rule(),
            "secret-scanner allowlist pragma added".to_string(),
            line,
        ),
        TextRule::PragmaLint => {
            if let Some(m) = res.lint.find(line) {
                let what = String::from_utf8_lossy(m.as_bytes()).to_string();
                emit(
                    rule.rule(),
                    format!("security lint suppressed: `{what}`"),
                    m.as_bytes(),
                );
            }
        }
        TextRule::Inject => {
            if let Some(m) = res.inject.find(line) {
                emit(
                    rule.rule(),
                    "text addressed to an AI model or the reviewer".to_string(),
                    m.as_bytes(),
                );
            }
        }
        TextRule::Hidden => hidden(line, emit),
        TextRule::TestIgnore => {
            if let Some(m) = res.ignore.find(line) {
                let what = String::from_utf8_lossy(m.as_bytes()).trim().to_string();
                emit(
                    rule.rule(),
                    format!("test disabled with `{what}`"),
                    m.as_bytes(),
                );
            }
        }
        TextRule::TestTrivial => trivial(line, res, emit),
        TextRule::HooksPath => emit(
            rule.rule(),
            "core.hooksPath set: git hooks redirected".to_string(),
            line,
        ),
        TextRule::PersistCmd => {
            if let Some(m) = res.persist.find(line) {
                let what = String::from_utf8_lossy(m.as_bytes()).to_string();
                emit(
                    rule.rule(),
                    format!("persistence command: `{what}`"),
                    m.as_bytes(),
                );
            }
        }
    }
}

fn contains_local(line: &[u8]) -> bool {
    [&b"localhost"[..], b"127.0.0.1", b"[::1]"]
        .iter()
        .any(|n| memchr::memmem::find(line, n).is_some())
}

fn trivial(line: &[u8], res: &TextRegexes, emit: &mut dyn FnMut(&'static Rule, String, &[u8])) {
    let r = &rules::TEST_TRIVIAL_ASSERT;
    if let Some(m) = res.trivial_true.find(line) {
        emit(r, "assertion on a constant true".to_string(), m.as_bytes());
        return;
    }
    for c in res.trivial_eq.captures_iter(line) {
        let pair = (c.get(1).or(c.get(3)), c.get(2).or(c.get(4)));
        if let (Some(a), Some(b)) = pair {
            if a.as_bytes() == b.as_bytes() {
                emit(
                    r,
                    "assertion compares a value with itself".to_string(),
                    c.get(0).map_or(line, |m| m.as_bytes()),
                );
                return;
            }
        }
    }
}

/// Reports zero-width/tag characters and bidi controls on a line. A ZWJ between two emoji is
/// how emoji sequences are spelled, so it is not reported.
fn hidden(line: &[u8], emit: &mut dyn FnMut(&'static Rule, String, &[u8])) {
    let text = String::from_utf8_lossy(line);
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    let (mut invisible, mut bidi) = (Vec::new(), Vec::new());
    while let Some(c) = chars.next() {
        let cp = u32::from(c);
        match cp {
            0x202A..=0x202E | 0x2066..=0x2069 => bidi.push(cp),
            0x200D => {
                let next_emoji = chars.peek().is_some_and(|&n| is_emoji(n));
                if !(prev.is_some_and(is_emoji) && next_emoji) {
                    invisible.push(cp);
                }
            }
            0x200B | 0x200C | 0x2060..=0x2064 | 0x180E | 0xE0000..=0xE007F => invisible.push(cp),
            0xFEFF if prev.is_some() => invisible.push(cp),
            _ => {}
        }
        prev = Some(c);
    }
    if !invisible.is_empty() {
        emit(
            &rules::INJECT_INVISIBLE,
            format!(
                "{} invisible character(s), first U+{:04X}",
                invisible.len(),
                invisible[0]
            ),
            line,
        );
    }
    if !bidi.is_empty() {
        emit(
            &rules::INJECT_BIDI,
            format!(
                "{} bidi control character(s), first U+{:04X}",
                bidi.len(),
                bidi[0]
            ),
            line,
        );
    }
}

fn is_emoji(c: char) -> bool {
    matches!(u32::from(c), 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F)
}
