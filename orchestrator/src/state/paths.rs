//! Where the state directory lives when `--state-dir` / `ORCHESTRATE_STATE_DIR` do not say.

use std::path::PathBuf;

/// `/var/lib/orchestrate` for root (the system install that `orchestrate setup` prepares),
/// otherwise `$XDG_STATE_HOME/orchestrate`, else `$HOME/.local/state/orchestrate`. `None` when
/// neither variable is set for a non-root user: the caller must then ask for `--state-dir`
/// rather than guess a path inside the repository.
pub fn default_state_dir() -> Option<PathBuf> {
    resolve(
        crate::sys::effective_uid_is_root(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn resolve(root: bool, xdg_state: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from("/var/lib/orchestrate"));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(x) = xdg_state.filter(|p| p.is_absolute()) {
        return Some(x.join("orchestrate"));
    }
    home.filter(|p| p.is_absolute())
        .map(|h| h.join(".local/state/orchestrate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_var_lib_whatever_the_environment() {
        assert_eq!(
            resolve(true, Some("/x".into()), Some("/home/a".into())),
            Some(PathBuf::from("/var/lib/orchestrate"))
        );
    }

    #[test]
    fn user_prefers_absolute_xdg_state_home_then_home() {
        assert_eq!(
            resolve(false, Some("/xdg".into()), Some("/home/a".into())),
            Some(PathBuf::from("/xdg/orchestrate"))
        );
        assert_eq!(
            resolve(false, Some("rel".into()), Some("/home/a".into())),
            Some(PathBuf::from("/home/a/.local/state/orchestrate"))
        );
        assert_eq!(resolve(false, None, None), None);
    }
}
