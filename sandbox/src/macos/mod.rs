//! macOS containment, kept thin: the Seatbelt profile, the dscl account plan and the hdiutil
//! APFS volume plan are pure functions of the role policy (and of the setup plan), tested on
//! their text on every platform; only [`apply`] (compiled on macOS alone) runs them.
//!
//! The layers map as in DESIGN.md: identity = a hidden standard user per principal (dscl);
//! files, second fence and network = one Seatbelt profile given to `sandbox-exec -p`, which
//! denies by default, allows reads of the policy's read paths and writes of its write paths,
//! and no network but a connect to the gateway's unix socket; the volume = a size-capped APFS
//! sparse image (hdiutil). No seccomp, namespaces or cgroups exist there. macOS is not
//! exercised in CI: the texts are tested, applying them is not.

mod command;
mod dscl;
mod hdiutil;
mod seatbelt;

// Also compiled (never run) in test builds elsewhere, so it keeps compiling without a Mac.
#[cfg(any(target_os = "macos", test))]
pub mod apply;

pub use command::Cmd;
pub use dscl::{account_plan, account_removal_plan, MacAccount, HIDDEN_ID_RANGE};
pub use hdiutil::{volume_plan, VolumePlan};
pub use seatbelt::{profile, SANDBOX_EXEC};

use std::path::PathBuf;

/// Errors building a macOS plan. Each names the offending value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MacError {
    /// A path the profile or a command would carry is relative or holds a character the
    /// profile language or a command line cannot carry safely (NUL, newline, `"`, `\`).
    #[error("path {0:?} must be absolute, without NUL, newline, quote or backslash")]
    BadPath(PathBuf),
    /// No free id is left in the hidden-account range for this user.
    #[error("no free id in {}..{} for {name:?}", HIDDEN_ID_RANGE.start, HIDDEN_ID_RANGE.end)]
    NoFreeId {
        /// The account that got none.
        name: String,
    },
    /// A volume size of zero or beyond the cap.
    #[error("volume size {0} MiB is outside 1..={max} MiB", max = hdiutil::MAX_SIZE_MB)]
    Size(u64),
    /// A volume name hdiutil would refuse or misread.
    #[error("volume name {0:?}: want [A-Za-z0-9._-]+, at most 64 bytes")]
    VolumeName(String),
}

#[cfg(test)]
mod tests;
