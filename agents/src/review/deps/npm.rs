//! package.json and package-lock.json.

use super::{lower_bound, Dep, Manifest, ParseError, Source};
use serde_json::Value;

const SECTIONS: [&str; 4] = [
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
];

const LIFECYCLE: [&str; 5] = [
    "preinstall",
    "install",
    "postinstall",
    "prepare",
    "prepublish",
];

fn parse_json(path: &str, text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|source| ParseError::Json {
        path: path.to_string(),
        source,
    })
}

/// Classifies an npm dependency specifier.
fn source_of(spec: &str) -> Source {
    let s = spec.trim();
    if s.starts_with("git")
        || s.starts_with("github:")
        || s.starts_with("gitlab:")
        || s.starts_with("bitbucket:")
    {
        Source::Git(s.to_string())
    } else if s.starts_with("http://") || s.starts_with("https://") {
        Source::Url(s.to_string())
    } else if s.starts_with("file:")
        || s.starts_with("link:")
        || s.starts_with('.')
        || s.starts_with('/')
    {
        Source::Path(s.to_string())
    } else if !s.starts_with("npm:") && !s.starts_with('@') && s.contains('/') {
        // "owner/repo" is a GitHub shorthand.
        Source::Git(s.to_string())
    } else {
        Source::Registry
    }
}

/// package.json: the four dependency maps and install-time lifecycle scripts.
pub fn manifest(path: &str, text: &str) -> Result<Manifest, ParseError> {
    let v = parse_json(path, text)?;
    let mut m = Manifest::default();
    for s in SECTIONS {
        if let Some(Value::Object(deps)) = v.get(s) {
            for (name, spec) in deps {
                let spec = spec.as_str().unwrap_or("").to_string();
                let source = source_of(&spec);
                let version = match source {
                    Source::Registry => lower_bound(&spec),
                    _ => None,
                };
                m.deps.insert(
                    name.clone(),
                    Dep {
                        version,
                        spec,
                        source,
                    },
                );
            }
        }
    }
    if let Some(Value::Object(scripts)) = v.get("scripts") {
        for name in LIFECYCLE {
            if let Some(cmd) = scripts.get(name).and_then(Value::as_str) {
                m.install_scripts.insert(name.to_string(), cmd.to_string());
            }
        }
    }
    Ok(m)
}

/// package-lock.json (lockfile v1, v2 and v3).
pub fn lock(path: &str, text: &str) -> Result<Manifest, ParseError> {
    let v = parse_json(path, text)?;
    let mut m = Manifest {
        locked: true,
        ..Manifest::default()
    };
    let mut add = |name: &str, entry: &Value| {
        let ver = entry.get("version").and_then(Value::as_str).unwrap_or("");
        let resolved = entry.get("resolved").and_then(Value::as_str).unwrap_or("");
        let source = if resolved.starts_with("git") || ver.starts_with("git") {
            Source::Git(resolved.to_string())
        } else if entry.get("link").and_then(Value::as_bool) == Some(true)
            || ver.starts_with("file:")
        {
            Source::Path(resolved.to_string())
        } else {
            Source::Registry
        };
        let version = semver::Version::parse(ver).ok();
        if entry.get("hasInstallScript").and_then(Value::as_bool) == Some(true) {
            m.install_script_pkgs.insert(name.to_string());
        }
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
    };
    if let Some(Value::Object(pkgs)) = v.get("packages") {
        for (key, entry) in pkgs {
            if key.is_empty() {
                continue;
            }
            let name = key.rsplit("node_modules/").next().unwrap_or(key);
            add(name, entry);
        }
    } else if let Some(Value::Object(deps)) = v.get("dependencies") {
        for (name, entry) in deps {
            add(name, entry);
        }
    }
    Ok(m)
}
