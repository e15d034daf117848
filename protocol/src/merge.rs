//! The effective limits of a run: the strictest of roles.yaml, the FR and config.yaml.
//!
//! config.yaml may only tighten. A looser value there is an error naming the file, the field and
//! both values, never silently clamped: a platform owner who wrote a number must learn it was not
//! in force, not discover it in a receipt.

use std::fmt;

use crate::config::ThreadConfig;
use crate::fr::{Fr, FrLimits};
use crate::roles::{command_has_prefix, Limits, RoleName, RolesFile};

/// A number shown in a merge error (integer limits print without a decimal point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitValue {
    /// An integer limit.
    Int(u64),
    /// An amount (USD).
    Amount(f64),
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitValue::Int(v) => write!(f, "{v}"),
            LimitValue::Amount(v) => write!(f, "{v:.2}"),
        }
    }
}

/// Why the documents cannot be combined.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// config.yaml sets a limit looser than the document it may only tighten.
    #[error("config.yaml: {field}: {value} is looser than {base_file}'s {base_field} ({base_value}); config.yaml may only tighten limits")]
    Loosens {
        /// Field in config.yaml, e.g. `roles.codegen.limits.memory_mb`.
        field: String,
        /// Its value.
        value: LimitValue,
        /// The file it may only tighten (`roles.yaml`, `FR-12.yaml`).
        base_file: String,
        /// The field there.
        base_field: String,
        /// The value there.
        base_value: LimitValue,
    },
    /// config.yaml's coverage threshold is not a percentage.
    #[error("config.yaml: coverage.changed_lines_min_pct: {value} is above 100")]
    CoverageAbove100 {
        /// The value.
        value: u8,
    },
    /// roles.yaml has no policy for the role (validation should have caught this).
    #[error("roles.yaml: roles.{role}: missing")]
    MissingRole {
        /// The role.
        role: RoleName,
    },
    /// A test command is not covered by the test-runner's command prefixes.
    #[error("{file}: {field}: `{command}` is not covered by roles.yaml's roles.test-runner.commands ({allowed})")]
    CommandNotAllowed {
        /// The file that names it.
        file: String,
        /// The field.
        field: String,
        /// The command.
        command: String,
        /// The test-runner's prefixes, comma-separated.
        allowed: String,
    },
}

/// The FR's coverage settings with config.yaml's threshold when that is higher; a lower one is
/// an error (config.yaml may only tighten), as is one above 100.
pub fn effective_coverage(
    fr: &Fr,
    config: &ThreadConfig,
) -> Result<Option<crate::fr::Coverage>, MergeError> {
    let Some(over) = config.coverage else {
        return Ok(fr.coverage.clone());
    };
    let base = fr.coverage.as_ref().map_or(0, |c| c.changed_lines_min_pct);
    let pct = over.changed_lines_min_pct;
    if pct > 100 {
        return Err(MergeError::CoverageAbove100 { value: pct });
    }
    if pct < base {
        return Err(MergeError::Loosens {
            field: "coverage.changed_lines_min_pct".into(),
            value: LimitValue::Int(pct.into()),
            base_file: format!("{}.yaml", fr.id),
            base_field: "coverage.changed_lines_min_pct".into(),
            base_value: LimitValue::Int(base.into()),
        });
    }
    Ok(Some(crate::fr::Coverage {
        changed_lines_min_pct: over.changed_lines_min_pct,
        command: fr.coverage.as_ref().and_then(|c| c.command.clone()),
    }))
}

/// Tighten `base` with `over`, or fail naming both values.
fn tighten_int<T: Copy + Into<u64> + PartialOrd>(
    base: T,
    over: Option<T>,
    field: String,
    base_file: &str,
    base_field: String,
) -> Result<T, MergeError> {
    match over {
        None => Ok(base),
        Some(v) if v <= base => Ok(v),
        Some(v) => Err(MergeError::Loosens {
            field,
            value: LimitValue::Int(v.into()),
            base_file: base_file.to_owned(),
            base_field,
            base_value: LimitValue::Int(base.into()),
        }),
    }
}

/// The limits a role runs with: roles.yaml's, tightened by config.yaml's `roles.<role>.limits`.
pub fn effective_role_limits(
    roles: &RolesFile,
    config: &ThreadConfig,
    role: RoleName,
) -> Result<Limits, MergeError> {
    let base = roles
        .roles
        .get(&role)
        .ok_or(MergeError::MissingRole { role })?
        .limits;
    let Some(over) = config.roles.get(&role).and_then(|o| o.limits) else {
        return Ok(base);
    };
    let t = |name: &str, b: u64, o: Option<u64>| {
        tighten_int(
            b,
            o,
            format!("roles.{role}.limits.{name}"),
            "roles.yaml",
            format!("roles.{role}.limits.{name}"),
        )
    };
    Ok(Limits {
        cpu_seconds: t("cpu_seconds", base.cpu_seconds, over.cpu_seconds)?,
        memory_mb: t("memory_mb", base.memory_mb, over.memory_mb)?,
        pids: t("pids", base.pids, over.pids)?,
        wall_seconds: t("wall_seconds", base.wall_seconds, over.wall_seconds)?,
        nofile: t("nofile", base.nofile, over.nofile)?,
        fsize_mb: t("fsize_mb", base.fsize_mb, over.fsize_mb)?,
    })
}

/// The run's ceilings: the FR's, tightened by config.yaml's `limits`.
pub fn effective_run_limits(fr: &Fr, config: &ThreadConfig) -> Result<FrLimits, MergeError> {
    let base = fr.limits;
    let Some(over) = config.limits else {
        return Ok(base);
    };
    let fr_file = format!("{}.yaml", fr.id);
    let cost_usd = match over.cost_usd {
        None => base.cost_usd,
        Some(v) if v <= base.cost_usd => v,
        Some(v) => {
            return Err(MergeError::Loosens {
                field: "limits.cost_usd".into(),
                value: LimitValue::Amount(v),
                base_file: fr_file,
                base_field: "limits.cost_usd".into(),
                base_value: LimitValue::Amount(base.cost_usd),
            })
        }
    };
    let t64 = |name: &str, b: u64, o: Option<u64>| {
        tighten_int(
            b,
            o,
            format!("limits.{name}"),
            &fr_file,
            format!("limits.{name}"),
        )
    };
    let t32 = |name: &str, b: u32, o: Option<u32>| {
        tighten_int(
            b,
            o,
            format!("limits.{name}"),
            &fr_file,
            format!("limits.{name}"),
        )
    };
    Ok(FrLimits {
        cost_usd,
        runtime_seconds: t64(
            "runtime_seconds",
            base.runtime_seconds,
            over.runtime_seconds,
        )?,
        iterations: t32("iterations", base.iterations, over.iterations)?,
        no_progress: t32("no_progress", base.no_progress, over.no_progress)?,
        files: t32("files", base.files, over.files)?,
        tool_calls: t32("tool_calls", base.tool_calls, over.tool_calls)?,
    })
}

/// The run's cost ceiling: the stricter of the (merged) FR ceiling and roles.yaml's per-run
/// budget. The FR is the engineer's number, roles.yaml the platform owner's cap on it.
pub fn effective_cost_ceiling_usd(roles: &RolesFile, run: &FrLimits) -> f64 {
    run.cost_usd.min(roles.budgets.per_run_usd)
}

/// The test commands of a run: config.yaml's when it lists any, else the FR's acceptance test
/// commands. Every one, and every acceptance test command, must be covered by the
/// test-runner's `commands` prefixes.
pub fn effective_test_commands(
    roles: &RolesFile,
    fr: &Fr,
    config: &ThreadConfig,
) -> Result<Vec<String>, MergeError> {
    let runner = roles
        .roles
        .get(&RoleName::TestRunner)
        .ok_or(MergeError::MissingRole {
            role: RoleName::TestRunner,
        })?;
    let allowed = || runner.commands.join(", ");
    let covered = |c: &str| runner.commands.iter().any(|p| command_has_prefix(c, p));
    for (i, c) in config.test_commands.iter().enumerate() {
        if !covered(c) {
            return Err(MergeError::CommandNotAllowed {
                file: "config.yaml".into(),
                field: format!("test_commands[{i}]"),
                command: c.clone(),
                allowed: allowed(),
            });
        }
    }
    for (i, ac) in fr.acceptance.iter().enumerate() {
        if !covered(&ac.test.command) {
            return Err(MergeError::CommandNotAllowed {
                file: format!("{}.yaml", fr.id),
                field: format!("acceptance[{i}].test.command"),
                command: ac.test.command.clone(),
                allowed: allowed(),
            });
        }
    }
    if let Some(c) = fr.coverage.as_ref().and_then(|c| c.command.as_ref()) {
        if !covered(c) {
            return Err(MergeError::CommandNotAllowed {
                file: format!("{}.yaml", fr.id),
                field: "coverage.command".into(),
                command: c.clone(),
                allowed: allowed(),
            });
        }
    }
    if config.test_commands.is_empty() {
        Ok(fr.test_commands())
    } else {
        Ok(config.test_commands.clone())
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
