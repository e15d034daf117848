//! The Seatbelt (SBPL) profile of one role, for `sandbox-exec -p PROFILE -- CMD...`.
//!
//! Deny by default; then only what the policy names: reads of `system_read` and `read`, reads
//! and writes of `write`, HOME and the private tmp, and — with `network: gateway` — a connect to
//! the gateway's unix socket. Nothing else reaches the network. Paths are rewritten to what the
//! kernel sees (`/tmp` is `/private/tmp` on macOS; a rule on `/tmp` would never match).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::MacError;
use crate::plan::{Network, PolicyInput};

/// The program that applies a profile.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// macOS top-level symlinks into /private.
const PRIVATE_LINKS: [&str; 3] = ["/tmp", "/var", "/etc"];

/// Canonical spelling of `path` for a Seatbelt rule, or an error for paths SBPL cannot carry.
fn canonical(path: &Path) -> Result<PathBuf, MacError> {
    let text = path
        .to_str()
        .ok_or_else(|| MacError::BadPath(path.to_path_buf()))?;
    let bad = !path.is_absolute() || text.contains(['\0', '\n', '\r', '"', '\\']);
    if bad {
        return Err(MacError::BadPath(path.to_path_buf()));
    }
    for link in PRIVATE_LINKS {
        if let Ok(rest) = path.strip_prefix(link) {
            return Ok(Path::new("/private").join(&link[1..]).join(rest));
        }
    }
    Ok(path.to_path_buf())
}

fn canonical_set<'a>(
    paths: impl IntoIterator<Item = &'a PathBuf>,
) -> Result<BTreeSet<PathBuf>, MacError> {
    paths.into_iter().map(|p| canonical(p)).collect()
}

fn subpaths(out: &mut String, allow: &str, paths: &BTreeSet<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let _ = write!(out, "(allow {allow}");
    for p in paths {
        let _ = write!(out, "\n    (subpath \"{}\")", p.display());
    }
    out.push_str(")\n");
}

/// The profile text for `policy`. Pure: the same policy gives the same bytes.
pub fn profile(policy: &PolicyInput) -> Result<String, MacError> {
    let system = canonical_set(&policy.system_read)?;
    let mut write = canonical_set(&policy.write)?;
    write.insert(canonical(&policy.home)?);
    write.insert(canonical(&policy.tmp)?);
    // A path both read and written needs only the write rule (which allows reading too).
    let read: BTreeSet<PathBuf> = canonical_set(&policy.read)?
        .into_iter()
        .filter(|p| !write.contains(p))
        .collect();
    // Parents of every allowed path: programs stat them while resolving (metadata only,
    // never their contents or listing).
    let mut parents = BTreeSet::new();
    for p in system.iter().chain(&read).chain(&write) {
        for a in p.ancestors().skip(1) {
            parents.insert(a.to_path_buf());
        }
    }

    let mut out = String::new();
    out.push_str("(version 1)\n");
    let _ = writeln!(
        out,
        ";; orchestrate role {}: generated from roles.yaml; do not edit.",
        policy.role.replace(['\n', '\r'], " ")
    );
    out.push_str("(deny default)\n");
    out.push_str(";; processes: run and fork; signal and inspect only inside this sandbox\n");
    out.push_str("(allow process-exec process-fork)\n");
    out.push_str("(allow signal (target same-sandbox))\n");
    out.push_str("(allow process-info* (target same-sandbox))\n");
    out.push_str("(allow sysctl-read)\n");
    out.push_str("(allow ipc-posix-shm)\n");
    out.push_str("(allow mach-lookup (global-name \"com.apple.system.opendirectoryd.libinfo\"))\n");
    out.push_str(";; devices every program expects\n");
    out.push_str(
        "(allow file-read* file-write-data (literal \"/dev/null\") (literal \"/dev/zero\"))\n",
    );
    out.push_str("(allow file-read* (literal \"/dev/random\") (literal \"/dev/urandom\"))\n");
    if !parents.is_empty() {
        out.push_str("(allow file-read-metadata");
        for p in &parents {
            let _ = write!(out, "\n    (literal \"{}\")", p.display());
        }
        out.push_str(")\n");
    }
    out.push_str(";; read: system_read and read\n");
    let all_read: BTreeSet<PathBuf> = system.union(&read).cloned().collect();
    subpaths(&mut out, "file-read*", &all_read);
    out.push_str(";; write: write, HOME, tmp\n");
    subpaths(&mut out, "file-read* file-write*", &write);
    match &policy.network {
        Network::None => out.push_str(";; network: none\n"),
        Network::Gateway { socket } => {
            let socket = canonical(socket)?;
            out.push_str(";; network: the gateway's unix socket only\n");
            let _ = writeln!(
                out,
                "(allow network-outbound (remote unix-socket (path-literal \"{}\")))",
                socket.display()
            );
            let _ = writeln!(
                out,
                "(allow file-read* file-write-data (literal \"{}\"))",
                socket.display()
            );
        }
    }
    Ok(out)
}
