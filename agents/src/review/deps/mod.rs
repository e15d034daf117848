//! Dependency changes: Cargo (Cargo.toml, Cargo.lock), npm (package.json, package-lock.json) and
//! Python (pyproject.toml, requirements*.txt), compared before/after and classified with semver.
//! Each manifest kind parses into the same [`Manifest`] shape; [`compare`] does the rest.

mod cargo;
mod npm;
mod python;

use super::finding::Finding;
use super::rules::{self, Rule};
use semver::Version;
use std::collections::{BTreeMap, BTreeSet};

/// Where a dependency comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The package registry.
    Registry,
    /// A git repository (URL).
    Git(String),
    /// A local path.
    Path(String),
    /// An arbitrary URL (tarball, wheel).
    Url(String),
}

/// One dependency as a manifest states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// The lowest version the requirement admits, or the locked version.
    pub version: Option<Version>,
    /// The requirement as written (for messages).
    pub spec: String,
    /// Where it comes from.
    pub source: Source,
}

/// What the rules need from one manifest.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Dependencies by name (lock files may hold several versions: `name@version` keys are not
    /// used; the highest version per name is kept).
    pub deps: BTreeMap<String, Dep>,
    /// A lock file (its new entries are transitive, ranked lower).
    pub locked: bool,
    /// `[lib] proc-macro = true`.
    pub proc_macro: bool,
    /// `package.build` when set to a custom script.
    pub build_script: Option<String>,
    /// Install-time lifecycle scripts (npm) by name.
    pub install_scripts: BTreeMap<String, String>,
    /// Locked packages that run install scripts.
    pub install_script_pkgs: BTreeSet<String>,
}

/// A manifest did not parse.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// TOML syntax.
    #[error("{path}: TOML does not parse: {source}")]
    Toml {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: toml::de::Error,
    },
    /// JSON syntax.
    #[error("{path}: JSON does not parse: {source}")]
    Json {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// True when `path` names a manifest this module reads.
pub fn is_manifest(path: &str) -> bool {
    kind(path).is_some()
}

#[derive(Clone, Copy)]
enum Kind {
    CargoToml,
    CargoLock,
    PackageJson,
    PackageLock,
    Pyproject,
    Requirements,
}

fn kind(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    Some(match name {
        "Cargo.toml" => Kind::CargoToml,
        "Cargo.lock" => Kind::CargoLock,
        "package.json" => Kind::PackageJson,
        "package-lock.json" | "npm-shrinkwrap.json" => Kind::PackageLock,
        "pyproject.toml" => Kind::Pyproject,
        n if n.starts_with("requirements") && n.ends_with(".txt") => Kind::Requirements,
        n if n.starts_with("constraints") && n.ends_with(".txt") => Kind::Requirements,
        _ => return None,
    })
}

fn parse(path: &str, bytes: &[u8]) -> Result<Manifest, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    match kind(path) {
        Some(Kind::CargoToml) => cargo::manifest(path, &text),
        Some(Kind::CargoLock) => cargo::lock(path, &text),
        Some(Kind::PackageJson) => npm::manifest(path, &text),
        Some(Kind::PackageLock) => npm::lock(path, &text),
        Some(Kind::Pyproject) => python::pyproject(path, &text),
        Some(Kind::Requirements) => Ok(python::requirements(&text)),
        None => Ok(Manifest::default()),
    }
}

/// Lowest version named in a requirement such as `^1.2`, `>=1.0,<2`, `~=3.1`, `1.x`: the first
/// version-looking token, padded to three parts.
pub fn lower_bound(spec: &str) -> Option<Version> {
    let start = spec.find(|c: char| c.is_ascii_digit())?;
    let rest = &spec[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(rest.len());
    let token = rest[..end].trim_end_matches('.');
    let (core, pre) = match token.find(['-', '+']) {
        Some(i) => (&token[..i], &token[i..]),
        None => (token, ""),
    };
    let mut parts: Vec<&str> = core
        .split('.')
        .take_while(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let python_pre = core.len() > parts.join(".").len();
    parts.resize(3, "0");
    let base = parts.join(".");
    let full = if python_pre {
        // PEP 440 spells pre-releases without a dash (1.0a1, 2.0rc1).
        format!(
            "{base}-{}",
            &core[core.find(|c: char| c.is_ascii_alphabetic())?..]
        )
    } else {
        format!("{base}{pre}")
    };
    Version::parse(&full)
        .ok()
        .or_else(|| Version::parse(&base).ok())
}

/// Where a dependency is first named in the file, for the finding's line.
fn line_of(text: &str, name: &str) -> u32 {
    let quoted = [
        format!("\"{name}\""),
        format!("{name} ="),
        format!("{name}="),
    ];
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if quoted.iter().any(|q| l.contains(q.as_str())) || t.starts_with(name) {
            return u32::try_from(i + 1).unwrap_or(0);
        }
    }
    0
}

/// Compares dependency manifests before and after a change. Keys are repository-relative paths;
/// files that are not manifests are ignored. A manifest missing on one side is empty there.
pub fn compare(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for path in paths.into_iter().filter(|p| is_manifest(p)) {
        let old = match before.get(path).map(|b| parse(path, b)).transpose() {
            Ok(m) => m.unwrap_or_default(),
            // A broken "before" cannot be blamed on the change; compare against nothing.
            Err(_) => Manifest::default(),
        };
        let after_bytes = after.get(path);
        let new = match after_bytes.map(|b| parse(path, b)).transpose() {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => {
                out.push(Finding::new(
                    &rules::DEP_UNPARSEABLE,
                    path,
                    0,
                    e.to_string(),
                    path.as_bytes(),
                ));
                continue;
            }
        };
        let text = after_bytes
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        diff_manifests(path, &text, &old, &new, &mut out);
    }
    out
}

fn diff_manifests(path: &str, text: &str, old: &Manifest, new: &Manifest, out: &mut Vec<Finding>) {
    let mut push = |rule: &Rule, name: &str, msg: String| {
        let line = if text.is_empty() {
            0
        } else {
            line_of(text, name)
        };
        out.push(Finding::new(
            rule,
            path,
            line,
            msg,
            format!("{path}:{name}").as_bytes(),
        ));
    };
    let what = if new.locked || old.locked {
        "locked package"
    } else {
        "dependency"
    };
    for (name, d) in &new.deps {
        let prev = old.deps.get(name);
        match prev {
            None => {
                let rule = if new.locked {
                    &rules::DEP_NEW_LOCKED
                } else {
                    &rules::DEP_NEW
                };
                push(rule, name, format!("new {what} {name} {}", d.spec));
            }
            Some(p) => {
                if let (Some(a), Some(b)) = (&p.version, &d.version) {
                    if let Some(rule) = classify(a, b) {
                        push(rule, name, format!("{what} {name}: {a} -> {b}"));
                    }
                }
            }
        }
        if prev.is_none_or(|p| p.version != d.version)
            && d.version.as_ref().is_some_and(|v| !v.pre.is_empty())
        {
            push(
                &rules::DEP_PRERELEASE,
                name,
                format!("{what} {name} uses pre-release {}", d.spec),
            );
        }
        if prev.is_none_or(|p| p.source != d.source) {
            match &d.source {
                Source::Registry => {}
                Source::Git(u) => {
                    push(&rules::DEP_GIT, name, format!("{what} {name} from git {u}"))
                }
                Source::Path(p) => push(
                    &rules::DEP_PATH,
                    name,
                    format!("{what} {name} from path {p}"),
                ),
                Source::Url(u) => {
                    push(&rules::DEP_URL, name, format!("{what} {name} from URL {u}"))
                }
            }
        }
    }
    for name in old.deps.keys().filter(|n| !new.deps.contains_key(*n)) {
        push(&rules::DEP_REMOVED, name, format!("{what} {name} removed"));
    }
    if new.proc_macro && !old.proc_macro {
        push(
            &rules::DEP_PROC_MACRO,
            "proc-macro",
            "crate became a proc-macro (proc-macro = true)".into(),
        );
    }
    if new.build_script.is_some() && new.build_script != old.build_script {
        let b = new.build_script.clone().unwrap_or_default();
        push(
            &rules::DEP_BUILD_SCRIPT,
            "build",
            format!("package.build set to {b}"),
        );
    }
    for (name, cmd) in &new.install_scripts {
        if old.install_scripts.get(name) != Some(cmd) {
            push(
                &rules::DEP_INSTALL_SCRIPT,
                name,
                format!("npm {name} script added or changed"),
            );
        }
    }
    for pkg in new.install_script_pkgs.difference(&old.install_script_pkgs) {
        push(
            &rules::DEP_INSTALL_SCRIPT,
            pkg,
            format!("locked package {pkg} runs an install script"),
        );
    }
}

/// Classifies a version change. For 0.x versions a minor change is breaking, as cargo treats it.
pub fn classify(a: &Version, b: &Version) -> Option<&'static Rule> {
    use std::cmp::Ordering;
    match b.cmp_precedence(a) {
        Ordering::Equal => None,
        Ordering::Less => Some(&rules::DEP_DOWNGRADE),
        Ordering::Greater => Some(
            if b.major != a.major || (a.major == 0 && b.minor != a.minor) {
                &rules::DEP_MAJOR
            } else if b.minor != a.minor || (a.major == 0 && a.minor == 0 && b.patch != a.patch) {
                &rules::DEP_MINOR
            } else {
                &rules::DEP_PATCH
            },
        ),
    }
}
