//! The rule catalogue: every rule id the review can emit, with its severity and help text. Ids are
//! stable (they key SARIF fingerprints and gate policy); add new ones, never rename.

use super::finding::Severity;
use serde::Serialize;

/// What kind of risk a rule looks at; `ScanContext::only` filters on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Credentials and keys.
    Secrets,
    /// Dependency manifests and build-time code.
    Dependencies,
    /// Protected paths, CI, git configuration and hooks.
    Paths,
    /// Modes, binaries, file types, diff size.
    Files,
    /// Weakened tests.
    Tests,
    /// Shell rc files, services, cron, autostart.
    Persistence,
    /// New network endpoints.
    Network,
    /// Suppression pragmas.
    Pragmas,
    /// Text aimed at the reviewer, hidden characters.
    Injection,
    /// The scan's own configuration.
    Config,
}

impl Category {
    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Category> {
        Some(match s {
            "secrets" => Category::Secrets,
            "dependencies" => Category::Dependencies,
            "paths" => Category::Paths,
            "files" => Category::Files,
            "tests" => Category::Tests,
            "persistence" => Category::Persistence,
            "network" => Category::Network,
            "pragmas" => Category::Pragmas,
            "injection" => Category::Injection,
            "config" => Category::Config,
            _ => return None,
        })
    }
}

/// One rule's fixed description.
#[derive(Debug, Serialize)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Severity of every finding of this rule.
    pub severity: Severity,
    /// Category.
    pub category: Category,
    /// One line: what was found.
    pub name: &'static str,
    /// Why it matters and what to do.
    pub help: &'static str,
}

macro_rules! rule {
    ($c:ident, $id:literal, $sev:ident, $cat:ident, $name:literal, $help:literal) => {
        pub const $c: Rule = Rule {
            id: $id,
            severity: Severity::$sev,
            category: Category::$cat,
            name: $name,
            help: $help,
        };
    };
}

rule!(DEP_NEW, "ORC-DEP-NEW", Medium, Dependencies, "New dependency",
    "A dependency was added. New code from outside the repository runs in builds and tests; check that it is needed and well kept.");
rule!(
    DEP_NEW_LOCKED,
    "ORC-DEP-NEW-LOCKED",
    Low,
    Dependencies,
    "New package in a lock file",
    "A package (possibly transitive) appeared in a lock file."
);
rule!(
    DEP_REMOVED,
    "ORC-DEP-REMOVED",
    Note,
    Dependencies,
    "Dependency removed",
    "A dependency was removed."
);
rule!(
    DEP_PATCH,
    "ORC-DEP-BUMP-PATCH",
    Note,
    Dependencies,
    "Patch version bump",
    "A dependency moved to a newer patch release."
);
rule!(
    DEP_MINOR,
    "ORC-DEP-BUMP-MINOR",
    Low,
    Dependencies,
    "Minor version bump",
    "A dependency moved to a newer minor release."
);
rule!(DEP_MAJOR, "ORC-DEP-BUMP-MAJOR", Medium, Dependencies, "Major version bump",
    "A dependency moved to a new major release (or a new 0.x minor): its API and behaviour may change; read its changelog.");
rule!(
    DEP_DOWNGRADE,
    "ORC-DEP-DOWNGRADE",
    Medium,
    Dependencies,
    "Dependency downgraded",
    "A dependency moved to an older version, which may reintroduce fixed vulnerabilities."
);
rule!(
    DEP_PRERELEASE,
    "ORC-DEP-PRERELEASE",
    Medium,
    Dependencies,
    "Pre-release dependency",
    "A dependency now resolves to a pre-release version."
);
rule!(DEP_GIT, "ORC-DEP-GIT-SOURCE", High, Dependencies, "Dependency from a git repository",
    "A dependency is taken from a git repository instead of the registry: its content is not reviewed or immutable.");
rule!(
    DEP_PATH,
    "ORC-DEP-PATH-SOURCE",
    High,
    Dependencies,
    "Dependency from a local path",
    "A dependency is taken from a filesystem path, outside the registry's review."
);
rule!(
    DEP_URL,
    "ORC-DEP-URL-SOURCE",
    High,
    Dependencies,
    "Dependency from a URL",
    "A dependency is downloaded from an arbitrary URL."
);
rule!(DEP_BUILD_SCRIPT, "ORC-DEP-BUILD-SCRIPT", High, Dependencies, "New build script",
    "A build.rs (or a changed `build` key) runs arbitrary code at build time on every machine that builds the crate.");
rule!(
    DEP_PROC_MACRO,
    "ORC-DEP-PROC-MACRO",
    High,
    Dependencies,
    "New proc-macro crate",
    "`proc-macro = true` makes a crate run code inside the compiler at build time."
);
rule!(DEP_INSTALL_SCRIPT, "ORC-DEP-INSTALL-SCRIPT", High, Dependencies, "Install-time script",
    "An npm lifecycle script (preinstall/install/postinstall/prepare) or a package with hasInstallScript runs code at install time.");
rule!(
    DEP_UNPARSEABLE,
    "ORC-DEP-UNPARSEABLE",
    Medium,
    Dependencies,
    "Dependency manifest does not parse",
    "A manifest could not be parsed after the change, so its dependencies could not be compared."
);
rule!(DEP_UNRESOLVED, "ORC-DEP-UNRESOLVED", Medium, Dependencies, "Manifest changed, contents unavailable",
    "A dependency manifest changed but its full before/after contents were not available to classify the change.");
rule!(
    PATH_PROTECTED,
    "ORC-PATH-PROTECTED",
    Critical,
    Paths,
    "Protected path changed",
    "The diff touches a path listed in roles.yaml `protected_paths`; no agent diff may do that."
);
rule!(PATH_CI, "ORC-PATH-CI", High, Paths, "CI configuration changed",
    "CI configuration decides what runs with the project's credentials; an agent must not change it.");
rule!(
    GIT_ATTRIBUTES,
    "ORC-GIT-ATTRIBUTES",
    Medium,
    Paths,
    ".gitattributes changed",
    ".gitattributes changes how git treats files (line endings, diff, merge)."
);
rule!(GIT_ATTRIBUTES_FILTER, "ORC-GIT-ATTRIBUTES-FILTER", High, Paths, "git filter/diff/merge driver set",
    "A filter, diff or merge driver in .gitattributes runs a configured command on checkout, diff or merge.");
rule!(GIT_SUBMODULES, "ORC-GIT-SUBMODULES", High, Paths, ".gitmodules changed",
    "Submodules pull code from other repositories, and their URLs can run commands on old git versions.");
rule!(GIT_HOOKS, "ORC-GIT-HOOKS", Critical, Paths, "Git hook added or redirected",
    "Git hooks (.git/hooks, .husky, core.hooksPath, pre-commit config) run on the engineer's machine at the next git command.");
rule!(
    FILE_EXECUTABLE,
    "ORC-FILE-EXECUTABLE",
    Medium,
    Files,
    "File made executable",
    "A file became executable (mode 100755)."
);
rule!(
    FILE_SYMLINK,
    "ORC-FILE-SYMLINK",
    High,
    Files,
    "Symbolic link added",
    "A symbolic link can point outside the repository."
);
rule!(
    FILE_BINARY,
    "ORC-FILE-BINARY",
    Medium,
    Files,
    "Binary file",
    "A binary blob cannot be reviewed as text."
);
rule!(
    FILE_TYPE,
    "ORC-FILE-TYPE",
    Medium,
    Files,
    "File type outside the policy",
    "The file's extension is not in the policy's allowlist."
);
rule!(
    DIFF_SIZE,
    "ORC-DIFF-SIZE",
    High,
    Files,
    "Diff far beyond the plan",
    "The diff changes many more lines or files than the plan expected."
);
rule!(
    TEST_DELETED_FILE,
    "ORC-TEST-DELETED-FILE",
    High,
    Tests,
    "Test file deleted",
    "A test file was deleted: the change may pass by removing what checks it."
);
rule!(
    TEST_DELETED_FN,
    "ORC-TEST-DELETED",
    High,
    Tests,
    "Test function deleted",
    "A test function was removed."
);
rule!(
    TEST_IGNORED,
    "ORC-TEST-IGNORED",
    High,
    Tests,
    "Test disabled",
    "A test was marked ignored or skipped (#[ignore], it.skip, xit, @pytest.mark.skip, ...)."
);
rule!(
    TEST_TRIVIAL_ASSERT,
    "ORC-TEST-TRIVIAL-ASSERT",
    High,
    Tests,
    "Assertion that cannot fail",
    "assert!(true), assert_eq!(x, x) and the like pass whatever the code does."
);
rule!(
    TEST_NO_ASSERT,
    "ORC-TEST-NO-ASSERT",
    Medium,
    Tests,
    "New test without an assertion",
    "A new test function asserts nothing, so it passes whatever the code does."
);
rule!(
    PERSIST_SHELL_RC,
    "ORC-PERSIST-SHELL-RC",
    High,
    Persistence,
    "Shell start-up file",
    "Shell rc and profile files run at every login or shell start."
);
rule!(
    PERSIST_SYSTEMD,
    "ORC-PERSIST-SYSTEMD",
    High,
    Persistence,
    "systemd unit",
    "A systemd unit or timer starts a program as a service."
);
rule!(
    PERSIST_CRON,
    "ORC-PERSIST-CRON",
    High,
    Persistence,
    "cron entry",
    "A cron entry runs a program on a schedule."
);
rule!(
    PERSIST_AUTOSTART,
    "ORC-PERSIST-AUTOSTART",
    High,
    Persistence,
    "Autostart entry",
    "XDG autostart .desktop files and launchd plists start programs at login."
);
rule!(
    PERSIST_COMMAND,
    "ORC-PERSIST-COMMAND",
    High,
    Persistence,
    "Command that installs persistence",
    "The code runs crontab, systemctl enable, launchctl load or writes to a shell rc file."
);
rule!(
    NET_URL,
    "ORC-NET-URL",
    Low,
    Network,
    "New URL or host",
    "Added code names a network endpoint."
);
rule!(
    NET_IP,
    "ORC-NET-IP",
    Medium,
    Network,
    "New IP address literal",
    "Added code names a literal IP address."
);
rule!(
    NET_CALL,
    "ORC-NET-CALL",
    Medium,
    Network,
    "New network call",
    "Added code opens network connections (TcpStream::connect, reqwest, curl, fetch, ...)."
);
rule!(
    PRAGMA_SECRET,
    "ORC-PRAGMA-SECRET-ALLOW",
    High,
    Pragmas,
    "Secret-scanner allowlist pragma",
    "gitleaks:allow, `pragma: allowlist secret` and the like hide a line from secret scanners."
);
rule!(PRAGMA_LINT, "ORC-PRAGMA-LINT-SUPPRESS", Medium, Pragmas, "Security lint suppressed",
    "nosec, noqa: S..., nosemgrep, eslint-disable of security rules or an allow of a security clippy lint hides a warning.");
rule!(INJECT_PHRASE, "ORC-INJECT-PHRASE", High, Injection, "Text addressed to an AI or reviewer",
    "Added text speaks to an AI model or to the reviewer (\"ignore previous instructions\", \"reviewer: approve\").");
rule!(
    INJECT_INVISIBLE,
    "ORC-INJECT-INVISIBLE",
    High,
    Injection,
    "Invisible characters",
    "Zero-width or Unicode tag characters hide text from a human reader."
);
rule!(INJECT_BIDI, "ORC-INJECT-BIDI", High, Injection, "Bidirectional control characters",
    "Bidi controls (U+202A–202E, U+2066–2069) make code display differently from how it compiles (Trojan Source).");
rule!(
    CONFIG_BAD_GLOB,
    "ORC-CONFIG-BAD-GLOB",
    High,
    Config,
    "Protected-path glob does not compile",
    "A protected_paths entry is not a valid glob, so that path could not be checked."
);
rule!(SCAN_ENGINE, "ORC-SCAN-ENGINE", Critical, Config, "Rule tables did not compile",
    "The scanner's own rule tables failed to build, so nothing was checked; the change must not pass.");
rule!(
    SCAN_UNREADABLE,
    "ORC-SCAN-UNREADABLE",
    Medium,
    Config,
    "File could not be read",
    "A file could not be read during the scan, so it was not checked."
);

/// Every non-secret rule, in catalogue order.
pub const OTHER_RULES: &[&Rule] = &[
    &DEP_NEW,
    &DEP_NEW_LOCKED,
    &DEP_REMOVED,
    &DEP_PATCH,
    &DEP_MINOR,
    &DEP_MAJOR,
    &DEP_DOWNGRADE,
    &DEP_PRERELEASE,
    &DEP_GIT,
    &DEP_PATH,
    &DEP_URL,
    &DEP_BUILD_SCRIPT,
    &DEP_PROC_MACRO,
    &DEP_INSTALL_SCRIPT,
    &DEP_UNPARSEABLE,
    &DEP_UNRESOLVED,
    &PATH_PROTECTED,
    &PATH_CI,
    &GIT_ATTRIBUTES,
    &GIT_ATTRIBUTES_FILTER,
    &GIT_SUBMODULES,
    &GIT_HOOKS,
    &FILE_EXECUTABLE,
    &FILE_SYMLINK,
    &FILE_BINARY,
    &FILE_TYPE,
    &DIFF_SIZE,
    &TEST_DELETED_FILE,
    &TEST_DELETED_FN,
    &TEST_IGNORED,
    &TEST_TRIVIAL_ASSERT,
    &TEST_NO_ASSERT,
    &PERSIST_SHELL_RC,
    &PERSIST_SYSTEMD,
    &PERSIST_CRON,
    &PERSIST_AUTOSTART,
    &PERSIST_COMMAND,
    &NET_URL,
    &NET_IP,
    &NET_CALL,
    &PRAGMA_SECRET,
    &PRAGMA_LINT,
    &INJECT_PHRASE,
    &INJECT_INVISIBLE,
    &INJECT_BIDI,
    &CONFIG_BAD_GLOB,
    &SCAN_ENGINE,
    &SCAN_UNREADABLE,
];

/// Every rule: the secret rules first, then the others.
pub fn all() -> Vec<&'static Rule> {
    super::secrets::PATTERNS
        .iter()
        .map(|p| &p.rule)
        .chain(OTHER_RULES.iter().copied())
        .collect()
}

/// Looks a rule up by id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    all().into_iter().find(|r| r.id == id)
}
