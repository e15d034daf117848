//! `config.yaml`: optional per-thread settings next to the FRs of one directory.
//!
//! It may only tighten `roles.yaml` and the FR; `merge` turns a looser value into an error.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::roles::RoleName;

/// The whole `config.yaml` document. Every field is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadConfig {
    /// Tighter run ceilings than the FR's.
    #[serde(default)]
    pub limits: Option<PartialFrLimits>,
    /// Test commands the test-runner runs (each covered by its `commands` prefixes).
    #[serde(default)]
    pub test_commands: Vec<String>,
    /// Per-role overrides.
    #[serde(default)]
    pub roles: BTreeMap<RoleName, RoleOverride>,
    /// A higher changed-line coverage threshold than the FR's (never a lower one).
    #[serde(default)]
    pub coverage: Option<ConfigCoverage>,
}

/// config.yaml's `coverage`: only the threshold (the command is the FR's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigCoverage {
    /// Minimum line coverage of changed lines, percent (0-100); at least the FR's.
    pub changed_lines_min_pct: u8,
}

/// FR run ceilings, each optional (absent = keep the FR's value).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartialFrLimits {
    /// Cost ceiling, USD.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Wall-clock ceiling, seconds.
    #[serde(default)]
    pub runtime_seconds: Option<u64>,
    /// Iteration cap.
    #[serde(default)]
    pub iterations: Option<u32>,
    /// No-progress cap.
    #[serde(default)]
    pub no_progress: Option<u32>,
    /// File cap.
    #[serde(default)]
    pub files: Option<u32>,
    /// Tool-call cap.
    #[serde(default)]
    pub tool_calls: Option<u32>,
}

/// Per-role override in config.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleOverride {
    /// Tighter limits than roles.yaml's for this role.
    #[serde(default)]
    pub limits: Option<PartialLimits>,
}

/// Role limits, each optional (absent = keep roles.yaml's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartialLimits {
    /// CPU seconds.
    #[serde(default)]
    pub cpu_seconds: Option<u64>,
    /// Memory, MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Processes and threads.
    #[serde(default)]
    pub pids: Option<u64>,
    /// Wall-clock seconds.
    #[serde(default)]
    pub wall_seconds: Option<u64>,
    /// Open files.
    #[serde(default)]
    pub nofile: Option<u64>,
    /// Largest file, MiB.
    #[serde(default)]
    pub fsize_mb: Option<u64>,
}

/// A config.yaml that parses but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A test command is empty.
    #[error("test_commands[{index}]: empty command")]
    EmptyTestCommand {
        /// Index in the list.
        index: usize,
    },
    /// A limit is zero or not a positive amount.
    #[error("{field}: {value} must be greater than 0")]
    ZeroLimit {
        /// Field path.
        field: String,
        /// The value.
        value: f64,
    },
}

impl ConfigError {
    /// The field path the error is about.
    pub fn field(&self) -> String {
        match self {
            ConfigError::EmptyTestCommand { index } => format!("test_commands[{index}]"),
            ConfigError::ZeroLimit { field, .. } => field.clone(),
        }
    }
}

impl ThreadConfig {
    /// Checks what parsing cannot (comparisons with roles.yaml and the FR are in `merge`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, c) in self.test_commands.iter().enumerate() {
            if c.split_whitespace().next().is_none() {
                return Err(ConfigError::EmptyTestCommand { index });
            }
        }
        if let Some(l) = &self.limits {
            if let Some(c) = l.cost_usd {
                if !(c.is_finite() && c > 0.0) {
                    return Err(ConfigError::ZeroLimit {
                        field: "limits.cost_usd".into(),
                        value: c,
                    });
                }
            }
            for (name, v) in [
                ("runtime_seconds", l.runtime_seconds),
                ("iterations", l.iterations.map(u64::from)),
                ("no_progress", l.no_progress.map(u64::from)),
                ("files", l.files.map(u64::from)),
                ("tool_calls", l.tool_calls.map(u64::from)),
            ] {
                if v == Some(0) {
                    return Err(ConfigError::ZeroLimit {
                        field: format!("limits.{name}"),
                        value: 0.0,
                    });
                }
            }
        }
        for (role, o) in &self.roles {
            if let Some(l) = &o.limits {
                for (name, v) in [
                    ("cpu_seconds", l.cpu_seconds),
                    ("memory_mb", l.memory_mb),
                    ("pids", l.pids),
                    ("wall_seconds", l.wall_seconds),
                    ("nofile", l.nofile),
                    ("fsize_mb", l.fsize_mb),
                ] {
                    if v == Some(0) {
                        return Err(ConfigError::ZeroLimit {
                            field: format!("roles.{role}.limits.{name}"),
                            value: 0.0,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
