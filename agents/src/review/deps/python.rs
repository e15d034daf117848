//! pyproject.toml (PEP 621 and Poetry) and requirements*.txt.

use super::{lower_bound, Dep, Manifest, ParseError, Source};
use toml::{Table, Value};

/// PEP 503 name normalisation: lower case, runs of `-_.` become `-`.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One PEP 508 requirement (`name[extra] >=1.0 ; marker`, `name @ url`).
fn pep508(line: &str) -> Option<(String, Dep)> {
    let line = line.split(';').next().unwrap_or(line).trim();
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    if name.is_empty() {
        return None;
    }
    let mut rest = line[end..].trim_start();
    if rest.starts_with('[') {
        rest = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
    }
    let dep = if let Some(url) = rest.strip_prefix('@') {
        url_dep(url.trim())
    } else {
        Dep {
            version: lower_bound(rest),
            spec: rest.to_string(),
            source: Source::Registry,
        }
    };
    Some((normalize(name), dep))
}

fn url_dep(url: &str) -> Dep {
    let source = if url.starts_with("git+") {
        Source::Git(url.to_string())
    } else if url.starts_with("file:") || url.starts_with('.') || url.starts_with('/') {
        Source::Path(url.to_string())
    } else {
        Source::Url(url.to_string())
    };
    Dep {
        version: None,
        spec: url.to_string(),
        source,
    }
}

/// requirements.txt: one requirement per line; `-e`/`--editable` paths and VCS URLs
/// (`git+https://...#egg=name`); options such as `-r` are skipped.
pub fn requirements(text: &str) -> Manifest {
    let mut m = Manifest::default();
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("-e ")
            .or_else(|| line.strip_prefix("--editable "))
            .map_or(line, str::trim);
        if line.starts_with('-') {
            continue;
        }
        let is_url = line.contains("://")
            || line.starts_with("git+")
            || line.starts_with('.')
            || line.starts_with('/');
        if is_url && !line.contains(" @ ") {
            let name = line
                .split("#egg=")
                .nth(1)
                .map(|e| e.split('&').next().unwrap_or(e).to_string())
                .unwrap_or_else(|| {
                    line.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(line)
                        .to_string()
                });
            m.deps.insert(normalize(&name), url_dep(line));
        } else if let Some((name, dep)) = pep508(line) {
            m.deps.insert(name, dep);
        }
    }
    m
}

fn poetry_dep(v: &Value) -> Dep {
    match v {
        Value::Table(t) => {
            if let Some(g) = t.get("git").and_then(Value::as_str) {
                return url_dep(&format!("git+{g}"));
            }
            if let Some(p) = t.get("path").and_then(Value::as_str) {
                return Dep {
                    version: None,
                    spec: p.to_string(),
                    source: Source::Path(p.to_string()),
                };
            }
            if let Some(u) = t.get("url").and_then(Value::as_str) {
                return url_dep(u);
            }
            let spec = t
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Dep {
                version: lower_bound(&spec),
                spec,
                source: Source::Registry,
            }
        }
        other => {
            let spec = other.as_str().unwrap_or("").to_string();
            Dep {
                version: lower_bound(&spec),
                spec,
                source: Source::Registry,
            }
        }
    }
}

/// pyproject.toml: `[project]` dependencies and optional dependencies, `[build-system]
/// requires` (build-time code), and Poetry's dependency tables.
pub fn pyproject(path: &str, text: &str) -> Result<Manifest, ParseError> {
    let t: Table = text.parse().map_err(|source| ParseError::Toml {
        path: path.to_string(),
        source,
    })?;
    let mut m = Manifest::default();
    let add_list = |list: Option<&Value>, suffix: &str, m: &mut Manifest| {
        for item in list.and_then(Value::as_array).into_iter().flatten() {
            if let Some((name, dep)) = item.as_str().and_then(pep508) {
                let key = if suffix.is_empty() {
                    name
                } else {
                    format!("{name} ({suffix})")
                };
                m.deps.insert(key, dep);
            }
        }
    };
    if let Some(p) = t.get("project") {
        add_list(p.get("dependencies"), "", &mut m);
        if let Some(Value::Table(opt)) = p.get("optional-dependencies") {
            for (group, list) in opt {
                add_list(Some(list), group, &mut m);
            }
        }
    }
    add_list(
        t.get("build-system").and_then(|b| b.get("requires")),
        "build",
        &mut m,
    );
    if let Some(poetry) = t.get("tool").and_then(|x| x.get("poetry")) {
        let mut tables: Vec<(&Table, String)> = Vec::new();
        for s in ["dependencies", "dev-dependencies"] {
            if let Some(Value::Table(d)) = poetry.get(s) {
                tables.push((d, String::new()));
            }
        }
        if let Some(Value::Table(groups)) = poetry.get("group") {
            for (g, v) in groups {
                if let Some(Value::Table(d)) = v.get("dependencies") {
                    tables.push((d, g.clone()));
                }
            }
        }
        for (d, group) in tables {
            for (name, v) in d {
                if name == "python" {
                    continue;
                }
                let key = if group.is_empty() {
                    normalize(name)
                } else {
                    format!("{} ({group})", normalize(name))
                };
                m.deps.insert(key, poetry_dep(v));
            }
        }
    }
    Ok(m)
}
