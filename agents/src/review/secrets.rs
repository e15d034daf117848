//! Secret patterns: provider keys, private keys, JWTs, credentials in URLs, and high-entropy values
//! assigned to key-like names. Each pattern has literal keywords for the Aho-Corasick prefilter
//! (matched ASCII-case-insensitively) and a regex that runs only on lines where a keyword hit.
//!
//! Order matters: when two patterns match overlapping bytes on one line, the earlier one wins, so
//! specific providers come before the generic rules.

use super::finding::Severity;
use super::rules::{Category, Rule};

/// How a regex match is confirmed before it becomes a finding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// Placeholder filter only.
    Plain,
    /// Placeholder filter, Shannon entropy ≥ the value, a digit and a letter in the value.
    Entropy(f32),
    /// Placeholder filter and Shannon entropy ≥ the value only, for tokens whose alphabet has no
    /// digits (Hugging Face's `hf_` + letters).
    EntropyLetters(f32),
    /// The match is a `BEGIN ... PRIVATE KEY` header: a body and an END line must follow.
    PrivateKey,
    /// A JWT: header must decode to JSON with `alg`; the jwt.io example is skipped.
    Jwt,
    /// The password part of a URL.
    UrlPassword,
}

/// One secret pattern.
#[derive(Debug)]
pub struct Pattern {
    /// The rule it reports.
    pub rule: Rule,
    /// Literal keywords; a line is checked only if one occurs (ASCII case-insensitive).
    pub keywords: &'static [&'static str],
    /// Regex (bytes, ASCII mode). The secret is the group named `v`, else the first group that
    /// took part, else the whole match.
    pub regex: &'static str,
    /// Confirmation step.
    pub check: Check,
}

macro_rules! secret {
    ($id:literal, $sev:ident, $name:literal, [$($kw:literal),+], $re:expr, $check:expr) => {
        Pattern {
            rule: Rule {
                id: $id,
                severity: Severity::$sev,
                category: Category::Secrets,
                name: $name,
                help: concat!($name, " found. Revoke and rotate the credential, remove it from the change, and load it from the environment or a secret store instead."),
            },
            keywords: &[$($kw),+],
            regex: $re,
            check: $check,
        }
    };
}

/// `name = value` glue shared by the context rules: optional quote, an assignment operator.
macro_rules! assign {
    () => {
        r#"["']?\s{0,5}(?::=|=>|=|:)\s{0,5}["'`]?"#
    };
}

/// Every secret pattern, most specific first.
pub const PATTERNS: &[Pattern] = &[
    secret!(
        "ORC-SECRET-GCP-SERVICE-ACCOUNT",
        Critical,
        "GCP service-account private key",
        ["\"private_key\""],
        r#""private_key"\s*:\s*"(?P<v>-----BEGIN[ A-Z]{0,20}PRIVATE KEY-----[^"]{40,})""#,
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-PRIVATE-KEY",
        Critical,
        "Private key block",
        ["PRIVATE KEY"],
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
        Check::PrivateKey
    ),
    secret!(
        "ORC-SECRET-AWS-KEY-ID",
        Critical,
        "AWS access key id",
        ["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
        r"\b(?P<v>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-AWS-SECRET-KEY",
        Critical,
        "AWS secret access key",
        ["aws"],
        concat!(
            r"(?i:aws)[\w.\-]{0,30}?(?i:key|secret)[\w.\-]{0,10}",
            assign!(),
            r"(?P<v>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"
        ),
        Check::Entropy(3.5)
    ),
    secret!(
        "ORC-SECRET-GITHUB-TOKEN",
        Critical,
        "GitHub token",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        r"\b(?P<v>gh[pousr]_[A-Za-z0-9]{36,255})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-GITHUB-FINE-GRAINED-PAT",
        Critical,
        "GitHub fine-grained personal access token",
        ["github_pat_"],
        r"\b(?P<v>github_pat_[A-Za-z0-9_]{82})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-GITLAB-TOKEN",
        Critical,
        "GitLab token",
        ["glpat-", "glptt-", "gldt-", "glrt-", "glcbt-", "glsoat-"],
        r"\b(?P<v>gl(?:pat|ptt|dt|rt|cbt|soat)-[A-Za-z0-9_\-]{20,})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-SLACK-TOKEN",
        Critical,
        "Slack token",
        ["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xapp-"],
        r"\b(?P<v>xox[abposre]-[0-9]+-[0-9A-Za-z\-]{8,250}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-SLACK-WEBHOOK",
        High,
        "Slack webhook URL",
        ["hooks.slack.com"],
        r"(?P<v>hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{8,100}(?:/[A-Za-z0-9+/]{8,100}){1,2})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-STRIPE-KEY",
        Critical,
        "Stripe live secret or restricted key",
        ["sk_live_", "rk_live_"],
        r"\b(?P<v>(?:sk|rk)_live_[A-Za-z0-9]{20,247})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-GOOGLE-API-KEY",
        High,
        "Google API key",
        ["AIza"],
        r"\b(?P<v>AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-AZURE-STORAGE-KEY",
        Critical,
        "Azure storage account key",
        ["AccountKey"],
        r"(?i:AccountKey)\s*=\s*(?P<v>[A-Za-z0-9+/]{86}==)",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-AZURE-AD-CLIENT-SECRET",
        High,
        "Azure AD client secret",
        ["Q~"],
        r#"(?:^|[\s'"`=:(])(?P<v>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?:$|[\s'"`),;])"#,
        Check::Entropy(3.0)
    ),
    secret!(
        "ORC-SECRET-ANTHROPIC-KEY",
        Critical,
        "Anthropic API key",
        ["sk-ant-"],
        r"\b(?P<v>sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_\-]{80,120})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-OPENAI-KEY",
        Critical,
        "OpenAI API key",
        ["T3BlbkFJ", "sk-proj-"],
        r"\b(?P<v>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}|sk-proj-[A-Za-z0-9_\-]{48,})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-TWILIO",
        High,
        "Twilio API key or auth token",
        ["twilio"],
        concat!(
            r"(?i:twilio)[\w.\-]{0,30}?",
            assign!(),
            r"(?P<v>SK[0-9a-fA-F]{32}|[0-9a-f]{32})\b"
        ),
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-SENDGRID",
        Critical,
        "SendGrid API key",
        ["SG."],
        r"\b(?P<v>SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-NPM-TOKEN",
        Critical,
        "npm access token",
        ["npm_"],
        r"\b(?P<v>npm_[A-Za-z0-9]{36})\b",
        Check::Entropy(3.0)
    ),
    secret!(
        "ORC-SECRET-PYPI-TOKEN",
        Critical,
        "PyPI upload token",
        ["pypi-AgEIcHlwaS5vcmc"],
        r"(?P<v>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-HEROKU",
        High,
        "Heroku API key",
        ["heroku", "HRKU-"],
        concat!(
            r"(?i:heroku)[\w.\-]{0,30}?",
            assign!(),
            r"(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|\b(HRKU-AA[0-9A-Za-z_\-]{58})"
        ),
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-MAILGUN",
        High,
        "Mailgun API key",
        ["key-"],
        r"\b(?P<v>key-[0-9a-f]{32})\b",
        Check::Entropy(3.0)
    ),
    secret!(
        "ORC-SECRET-SHOPIFY",
        Critical,
        "Shopify access token or shared secret",
        ["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\b(?P<v>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-DIGITALOCEAN",
        Critical,
        "DigitalOcean token",
        ["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\b(?P<v>do[opr]_v1_[a-f0-9]{64})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-DISCORD",
        High,
        "Discord bot token or webhook",
        ["discord"],
        concat!(
            r"(?i:discord)[\w.\-]{0,30}?",
            assign!(),
            r"(?P<v>[A-Za-z0-9_\-]{24,28}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40})|(discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,68})"
        ),
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-TELEGRAM-BOT",
        High,
        "Telegram bot token",
        [":AA"],
        r"\b(?P<v>[0-9]{8,10}:AA[0-9A-Za-z_\-]{33})(?:[^0-9A-Za-z_\-]|$)",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-VAULT-TOKEN",
        Critical,
        "HashiCorp Vault token",
        ["hvs.", "hvb.", "hvr."],
        r"\b(?P<v>hv[sbr]\.[A-Za-z0-9_\-]{90,300})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-DATABRICKS",
        Critical,
        "Databricks API token",
        ["dapi"],
        r"\b(?P<v>dapi[a-f0-9]{32}(?:-\d)?)\b",
        Check::Entropy(3.0)
    ),
    secret!(
        "ORC-SECRET-DOPPLER",
        Critical,
        "Doppler token",
        ["dp.pt.", "dp.st.", "dp.ct.", "dp.sa."],
        r"\b(?P<v>dp\.(?:pt|st|ct|sa)\.[A-Za-z0-9]{40,44})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-LINEAR",
        High,
        "Linear API key",
        ["lin_api_"],
        r"\b(?P<v>lin_api_[A-Za-z0-9]{40})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-POSTMAN",
        High,
        "Postman API key",
        ["PMAK-"],
        r"\b(?P<v>PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-HUGGINGFACE",
        High,
        "Hugging Face access token",
        ["hf_"],
        r"\b(?P<v>hf_[A-Za-z]{34})\b",
        Check::EntropyLetters(3.5)
    ),
    secret!(
        "ORC-SECRET-GRAFANA",
        High,
        "Grafana service-account or cloud token",
        ["glsa_", "glc_"],
        r"\b(?P<v>glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-ATLASSIAN",
        High,
        "Atlassian API token",
        ["ATATT3"],
        r"\b(?P<v>ATATT3[A-Za-z0-9_\-=]{186})",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-AGE-KEY",
        Critical,
        "age secret key",
        ["AGE-SECRET-KEY-1"],
        r"\b(?P<v>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-ALIBABA",
        High,
        "Alibaba Cloud access key id",
        ["LTAI"],
        r"\b(?P<v>LTAI[A-Za-z0-9]{20})\b",
        Check::Entropy(3.0)
    ),
    secret!(
        "ORC-SECRET-NEW-RELIC",
        High,
        "New Relic user API key",
        ["NRAK-"],
        r"\b(?P<v>NRAK-[A-Z0-9]{27})\b",
        Check::Plain
    ),
    secret!(
        "ORC-SECRET-JWT",
        High,
        "JSON Web Token",
        ["eyJ"],
        r"\b(?P<v>eyJ[A-Za-z0-9_\-]{12,}\.eyJ[A-Za-z0-9_\-]{12,}\.[A-Za-z0-9_\-]{10,}={0,2})",
        Check::Jwt
    ),
    secret!(
        "ORC-SECRET-URL-CREDENTIALS",
        High,
        "Credentials inside a URL",
        ["://"],
        r#"\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://(?P<u>[^\s:/?#@'"`<>\[\]{}()\\]{1,100}):(?P<v>[^\s/?#@'"`<>{}()\\]{1,200})@[A-Za-z0-9\[]"#,
        Check::UrlPassword
    ),
    secret!(
        "ORC-SECRET-GENERIC",
        High,
        "High-entropy value assigned to a key-like name",
        [
            "key",
            "secret",
            "token",
            "passw",
            "pwd",
            "credential",
            "auth"
        ],
        concat!(
            r"(?i:[\w.\-]{0,40}(?:api[_.\-]?key|apikey|secret|token|passwd|password|pwd|auth[_.\-]?key|access[_.\-]?key|private[_.\-]?key|client[_.\-]?secret|credential|signing[_.\-]?key|encryption[_.\-]?key|master[_.\-]?key)s?)[\w.\-]{0,20}",
            assign!(),
            r#"(?P<v>[A-Za-z0-9+/=_\-.~]{16,200})(?:["'`\s;,)\]}]|$)"#
        ),
        Check::Entropy(3.5)
    ),
];

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(value: &[u8]) -> f32 {
    if value.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in value {
        counts[usize::from(b)] += 1;
    }
    #[allow(clippy::cast_precision_loss)] // lengths are far below f32's exact-integer range
    let len = value.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            #[allow(clippy::cast_precision_loss)]
            let p = c as f32 / len;
            -p * p.log2()
        })
        .sum()
}

/// Markers that make a value a documented example or a placeholder rather than a credential.
const PLACEHOLDER_MARKERS: &[&str] = &[
    "example",
    "dummy",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "your",
    "redacted",
    "sample",
    "fake",
    "test",
    "xxxx",
    "***",
    "...",
    "<",
    ">",
    "${",
    "{{",
    "}}",
    "%s",
    "todo",
    "insert",
    "replace",
    "0123456789",
    "1234567890",
    "abcdefghij",
    "notreal",
    "not_real",
];

/// True when `value` is a placeholder, template reference or documented example.
pub fn is_placeholder(value: &[u8]) -> bool {
    if value.is_empty() || value[0] == b'$' || value[0] == b'%' {
        return true;
    }
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDER_MARKERS
        .iter()
        .any(|m| memchr::memmem::find(&lower, m.as_bytes()).is_some())
    {
        return true;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in value {
        if !seen[usize::from(b)] {
            seen[usize::from(b)] = true;
            distinct += 1;
        }
    }
    // All one character, or a handful of them ("abababab", "0000-0000").
    distinct <= 3 || (value.len() >= 12 && distinct <= 5)
}

/// True when `value` looks like a code identifier or a dotted/dashed name rather than a random
/// token: a run of five or more lower-case letters followed by a separator.
pub fn looks_like_identifier(value: &[u8]) -> bool {
    let mut run = 0;
    for &b in value {
        if b.is_ascii_lowercase() {
            run += 1;
        } else {
            if run >= 5 && matches!(b, b'_' | b'.' | b'-' | b'/') {
                return true;
            }
            run = 0;
        }
    }
    false
}

/// The entropy rule's full test.
pub fn passes_entropy(value: &[u8], min: f32) -> bool {
    value.iter().any(u8::is_ascii_digit)
        && value.iter().any(u8::is_ascii_alphabetic)
        && !looks_like_identifier(value)
        && shannon_entropy(value) >= min
}

/// Passwords in URLs that are documentation, not secrets.
pub fn is_placeholder_password(user: &[u8], password: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "password", "passwd", "pass", "pwd", "secret", "user", "username", "admin", "root",
        "guest", "postgres", "mysql", "redis", "token", "pw", "p", "x", "foo", "bar", "baz",
    ];
    let lower = password.to_ascii_lowercase();
    password == user
        || WORDS.iter().any(|w| lower == w.as_bytes())
        || is_placeholder(password)
        || password.iter().all(|b| b.is_ascii_digit()) && password.len() <= 5
}
