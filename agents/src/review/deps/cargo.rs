//! Cargo.toml and Cargo.lock.

use super::{lower_bound, Dep, Manifest, ParseError, Source};
use semver::{Version, VersionReq};
use toml::{Table, Value};

const SECTIONS: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

fn parse_toml(path: &str, text: &str) -> Result<Table, ParseError> {
    text.parse::<Table>().map_err(|source| ParseError::Toml {
        path: path.to_string(),
        source,
    })
}

/// The lowest version a Cargo requirement admits (`"1.2"` is `^1.2.0`).
fn req_version(spec: &str) -> Option<Version> {
    let req = VersionReq::parse(spec).ok()?;
    let c = req.comparators.first()?;
    let v = Version {
        major: c.major,
        minor: c.minor.unwrap_or(0),
        patch: c.patch.unwrap_or(0),
        pre: c.pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    };
    Some(v).or_else(|| lower_bound(spec))
}

fn dep_from(value: &Value) -> Dep {
    match value {
        Value::String(s) => Dep {
            version: req_version(s),
            spec: s.clone(),
            source: Source::Registry,
        },
        Value::Table(t) => {
            let spec = t
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let source = if let Some(g) = t.get("git").and_then(Value::as_str) {
                Source::Git(g.to_string())
            } else if let Some(p) = t.get("path").and_then(Value::as_str) {
                Source::Path(p.to_string())
            } else {
                Source::Registry
            };
            let spec =
                if spec.is_empty() && t.get("workspace").and_then(Value::as_bool) == Some(true) {
                    "(workspace)".to_string()
                } else {
                    spec
                };
            Dep {
                version: req_version(&spec),
                spec,
                source,
            }
        }
        _ => Dep {
            version: None,
            spec: String::new(),
            source: Source::Registry,
        },
    }
}

fn collect(table: &Table, prefix: &str, m: &mut Manifest) {
    for s in SECTIONS {
        if let Some(Value::Table(deps)) = table.get(s) {
            for (name, v) in deps {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{name} ({prefix})")
                };
                m.deps.insert(key, dep_from(v));
            }
        }
    }
}

/// Cargo.toml: every dependency table (also `[workspace.dependencies]` and per-target ones),
/// `[lib] proc-macro` and `package.build`.
pub fn manifest(path: &str, text: &str) -> Result<Manifest, ParseError> {
    let t = parse_toml(path, text)?;
    let mut m = Manifest::default();
    collect(&t, "", &mut m);
    if let Some(Value::Table(ws)) = t.get("workspace") {
        if let Some(Value::Table(deps)) = ws.get("dependencies") {
            for (name, v) in deps {
                m.deps.insert(format!("{name} (workspace)"), dep_from(v));
            }
        }
    }
    if let Some(Value::Table(targets)) = t.get("target") {
        for (cfg, v) in targets {
            if let Value::Table(tt) = v {
                collect(tt, cfg, &mut m);
            }
        }
    }
    m.proc_macro = t
        .get("lib")
        .and_then(|l| l.get("proc-macro").or_else(|| l.get("proc_macro")))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    m.build_script = t
        .get("package")
        .and_then(|p| p.get("build"))
        .and_then(|b| match b {
            Value::String(s) => Some(s.clone()),
            Value::Boolean(true) => Some("build.rs".to_string()),
            _ => None,
        });
    Ok(m)
}

/// Cargo.lock: `[[package]]` entries; the highest version per name.
pub fn lock(path: &str, text: &str) -> Result<Manifest, ParseError> {
    let t = parse_toml(path, text)?;
    let mut m = Manifest {
        locked: true,
        ..Manifest::default()
    };
    let Some(Value::Array(pkgs)) = t.get("package") else {
        return Ok(m);
    };
    for p in pkgs {
        let (Some(name), Some(ver)) = (
            p.get("name").and_then(Value::as_str),
            p.get("version").and_then(Value::as_str),
        ) else {
            continue;
        };
        let source = match p.get("source").and_then(Value::as_str) {
            Some(s) if s.starts_with("git+") => {
                Source::Git(s.trim_start_matches("git+").to_string())
            }
            Some(s) if s.starts_with("path+") => Source::Path(s.to_string()),
            _ => Source::Registry,
        };
        let version = Version::parse(ver).ok();
        let keep = m.deps.get(name).is_none_or(|d| d.version < version);
        if keep {
            m.deps.insert(
                name.to_string(),
                Dep {
                    version,
                    spec: ver.to_string(),
                    source,
                },
            );
        }
    }
    Ok(m)
}
