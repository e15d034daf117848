//! What a launch actually got: one status per layer, the exit status, and whether the wall clock
//! killed it. The run's manifest and `sandbox exec --json` print this as is.

use serde::{Deserialize, Serialize};

use crate::plan::Layer;

/// Whether a layer was live for a launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LayerStatus {
    Applied,
    /// Switched off by the caller (tests, `--allow-weaker` runs that chose to).
    Skipped {
        reason: String,
    },
    /// Wanted but could not be applied here; only possible with `allow_weaker`.
    Unavailable {
        reason: String,
    },
}

/// One layer's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    pub layer: Layer,
    #[serde(flatten)]
    pub status: LayerStatus,
}

/// How the role's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Shell convention: a signal `n` becomes `128 + n`.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    /// Decodes a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

/// A setup step failed for a layer the policy requires: the command never ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupFailure {
    /// The layer whose step failed (`None` for steps that belong to no layer, e.g. `chdir`).
    pub layer: Option<Layer>,
    pub error: String,
}

/// Everything the caller learns about one launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchReport {
    pub role: String,
    pub layers: Vec<LayerReport>,
    /// `None` when setup failed before the command could run.
    pub exit: Option<Exit>,
    pub wall_killed: bool,
    pub setup_failure: Option<SetupFailure>,
    /// `execve` of the command failed (after every layer was applied).
    pub exec_failure: Option<ExecFailure>,
    pub elapsed_ms: u64,
}

/// The command could not be executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecFailure {
    pub errno: i32,
    pub error: String,
}

impl LaunchReport {
    /// The status to pass through: the command's, 124 for a wall-clock kill (as `timeout(1)`),
    /// 125 for a setup failure (as container runtimes), 127/126 when the command is missing or
    /// cannot be executed (as shells).
    pub fn exit_code(&self) -> i32 {
        if self.wall_killed {
            return 124;
        }
        if self.setup_failure.is_some() {
            return 125;
        }
        if let Some(e) = &self.exec_failure {
            return if e.errno == libc::ENOENT { 127 } else { 126 };
        }
        self.exit.map_or(125, Exit::code)
    }

    /// Layers that were not applied (the weaker mode a receipt must record).
    pub fn weaker(&self) -> Vec<Layer> {
        self.layers
            .iter()
            .filter(|l| l.status != LayerStatus::Applied)
            .map(|l| l.layer)
            .collect()
    }

    /// The status of `layer`, if reported.
    pub fn status(&self, layer: Layer) -> Option<&LayerStatus> {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .map(|l| &l.status)
    }
}
