//! Semantic checks on a parsed `roles.yaml`, and the protected-path matcher built from it.
//!
//! Parsing already guarantees the shape; these checks refuse a policy that parses but would be
//! unsafe or ambiguous (a missing role, two roles sharing an OS user, a writable path off the
//! sandbox volume, a review driven by a model, thresholds out of order).

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::frame::MessageKind;
use crate::roles::{Driver, FindingAction, Limits, Network, RoleName, RolePolicy, RolesFile};

/// Placeholders a path in `roles.yaml` may start with.
pub const PLACEHOLDERS: [&str; 4] = ["{repo}", "{volume}", "{scratch}", "{toolchain}"];
/// Placeholders that live on the sandbox volume, the only writable place a role has.
pub const WRITABLE_PLACEHOLDERS: [&str; 3] = ["{repo}", "{volume}", "{scratch}"];

/// A `roles.yaml` that parses but is not a usable policy. Every variant names the field.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    /// `version` is not one this build understands.
    #[error("version: unsupported version {found}, this build reads version 1")]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// One of the six roles has no policy.
    #[error("roles.{role}: missing: every one of the six roles needs a policy")]
    MissingRole {
        /// The missing role.
        role: RoleName,
    },
    /// A user name is empty or not a valid OS user name.
    #[error("{field}: invalid user name `{user}`: use 1-32 characters from a-z, 0-9, `_`, `-`, starting with a letter or `_`")]
    BadUser {
        /// Field path, e.g. `roles.codegen.user`.
        field: String,
        /// The offending value.
        user: String,
    },
    /// Two identities share one OS user, so the kernel could not tell them apart.
    #[error("{field}: user `{user}` is already used by {other}: every role, the gate and the orchestrator need their own OS user")]
    DuplicateUser {
        /// Field path of the second use.
        field: String,
        /// The shared user.
        user: String,
        /// Field path of the first use.
        other: String,
    },
    /// A path is neither a known placeholder nor absolute, or climbs with `..`.
    #[error("{field}: path `{path}` must be absolute or start with one of {{repo}}, {{volume}}, {{scratch}}, {{toolchain}}, and must not contain `..`")]
    BadPath {
        /// Field path, e.g. `roles.codegen.read[1]`.
        field: String,
        /// The offending path.
        path: String,
    },
    /// A writable path is off the sandbox volume.
    #[error("{field}: `{path}` is not writable: a role may write only under {{repo}}, {{volume}} or {{scratch}}, which live on the sandbox volume")]
    WriteOffVolume {
        /// Field path, e.g. `roles.codegen.write[0]`.
        field: String,
        /// The offending path.
        path: String,
    },
    /// A system path is not absolute.
    #[error("{field}: `{path}` must be an absolute path without `..`")]
    SystemPathNotAbsolute {
        /// Field path, e.g. `sandbox.system_read[2]`.
        field: String,
        /// The offending path.
        path: String,
    },
    /// A role lists a message kind only another party may send.
    #[error("{field}: role {role} may not send `{kind}` messages (only {allowed} may)")]
    ForbiddenMessage {
        /// Field path, e.g. `roles.planner.messages[0]`.
        field: String,
        /// The role.
        role: RoleName,
        /// The kind.
        kind: MessageKind,
        /// Who may send it, in words.
        allowed: String,
    },
    /// A deterministic-only role is configured with a model driver.
    #[error("roles.{role}.driver: `{}` is not allowed: only planner and codegen may use a model; {role} must be deterministic", driver.as_str())]
    ModelDriverNotAllowed {
        /// The role.
        role: RoleName,
        /// The configured driver.
        driver: Driver,
    },
    /// Codegen configured as deterministic, which has no implementation.
    #[error("roles.codegen.driver: codegen has no deterministic implementation: use replay, command or llm")]
    CodegenDeterministic,
    /// The `command` driver without a `command:` block, or a `command:` block that cannot run.
    #[error("roles.{role}.command: {problem}")]
    CommandDriver {
        /// The role.
        role: RoleName,
        /// What is wrong.
        problem: &'static str,
    },
    /// The `llm` driver without a usable `llm:` block (or the block under another driver).
    #[error("{field}: {problem}")]
    LlmDriver {
        /// Field path, e.g. `roles.codegen.llm.model`.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A limit is zero.
    #[error("{field}: must be greater than 0")]
    ZeroLimit {
        /// Field path, e.g. `roles.codegen.limits.pids`.
        field: String,
    },
    /// A command prefix is empty.
    #[error("{field}: empty command prefix")]
    EmptyCommand {
        /// Field path.
        field: String,
    },
    /// A network allowlist entry is not `host:port`.
    #[error("{field}: `{entry}` is not `host:port`")]
    BadAllowlistEntry {
        /// Field path.
        field: String,
        /// The entry.
        entry: String,
    },
    /// An environment variable name is empty or has characters that cannot appear in one.
    #[error("{field}: `{name}` is not an environment variable name")]
    BadEnvName {
        /// Field path.
        field: String,
        /// The name.
        name: String,
    },
    /// A budget is negative, zero or not a number.
    #[error("budgets.{field}: {value} must be a positive amount")]
    BadBudget {
        /// Field name, e.g. `per_run_usd`.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// Budgets are not ordered request <= run <= month.
    #[error("budgets: per_request_usd ({per_request}) <= per_run_usd ({per_run}) <= per_month_usd ({per_month}) must hold")]
    BudgetOrder {
        /// per_request_usd.
        per_request: f64,
        /// per_run_usd.
        per_run: f64,
        /// per_month_usd.
        per_month: f64,
    },
    /// Thresholds are out of order or above 100.
    #[error("budgets: thresholds must satisfy 0 < warn_pct ({warn}) <= escalate_pct ({escalate}) <= stop_pct ({stop}) <= 100")]
    Thresholds {
        /// warn_pct.
        warn: u8,
        /// escalate_pct.
        escalate: u8,
        /// stop_pct.
        stop: u8,
    },
    /// A protected path is not a valid glob.
    #[error("{field}: `{pattern}` is not a valid glob: {source}")]
    BadGlob {
        /// Field path, e.g. `protected_paths[3]`.
        field: String,
        /// The pattern.
        pattern: String,
        /// Why globset refused it.
        source: globset::Error,
    },
    /// roles.yaml itself would not be protected.
    #[error(
        "protected_paths: must cover `roles.yaml` itself, or an agent could rewrite its own policy"
    )]
    RolesYamlUnprotected,
    /// No approver for staging -> main.
    #[error("approvers: empty: nobody could promote staging to main")]
    NoApprovers,
    /// `sandbox.volume.size_mb` is zero.
    #[error("sandbox.volume.size_mb: must be greater than 0")]
    ZeroVolume,
    /// `severity_policy.critical` is not `block`.
    #[error("severity_policy.critical: `{}` is not allowed: a critical finding must block", found.as_str())]
    CriticalNotBlocking {
        /// The configured action.
        found: FindingAction,
    },
    /// A per-rule override names no rule id or prefix.
    #[error("{field}: `{rule}` is not a rule id (letters, digits, `-`, `_`, `.`) or a prefix ending in `*`")]
    BadRuleId {
        /// Field path, e.g. `severity_policy.rules[2].rule`.
        field: String,
        /// The offending value.
        rule: String,
    },
    /// An anomaly setting out of range.
    #[error("{field}: {problem}")]
    BadAnomaly {
        /// Field path, e.g. `anomaly.repeat_stop`.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// Two overrides for the same rule id or prefix.
    #[error("{field}: `{rule}` already has an action at {other}")]
    DuplicateRule {
        /// Field path of the second entry.
        field: String,
        /// The rule.
        rule: String,
        /// Field path of the first entry.
        other: String,
    },
}

impl RolesError {
    /// The field path the error is about, as written in error messages (`roles.codegen.user`).
    pub fn field(&self) -> String {
        match self {
            RolesError::Version { .. } => "version".into(),
            RolesError::MissingRole { role } => format!("roles.{role}"),
            RolesError::BadUser { field, .. }
            | RolesError::DuplicateUser { field, .. }
            | RolesError::BadPath { field, .. }
            | RolesError::WriteOffVolume { field, .. }
            | RolesError::SystemPathNotAbsolute { field, .. }
            | RolesError::ForbiddenMessage { field, .. }
            | RolesError::ZeroLimit { field }
            | RolesError::EmptyCommand { field }
            | RolesError::BadAllowlistEntry { field, .. }
            | RolesError::BadEnvName { field, .. }
            | RolesError::BadGlob { field, .. }
            | RolesError::BadRuleId { field, .. }
            | RolesError::BadAnomaly { field, .. }
            | RolesError::LlmDriver { field, .. }
            | RolesError::DuplicateRule { field, .. } => field.clone(),
            RolesError::CriticalNotBlocking { .. } => "severity_policy.critical".into(),
            RolesError::ModelDriverNotAllowed { role, .. } => format!("roles.{role}.driver"),
            RolesError::CodegenDeterministic => "roles.codegen.driver".into(),
            RolesError::CommandDriver { role, .. } => format!("roles.{role}.command"),
            RolesError::BadBudget { field, .. } => format!("budgets.{field}"),
            RolesError::BudgetOrder { .. } | RolesError::Thresholds { .. } => "budgets".into(),
            RolesError::RolesYamlUnprotected => "protected_paths".into(),
            RolesError::NoApprovers => "approvers".into(),
            RolesError::ZeroVolume => "sandbox.volume.size_mb".into(),
        }
    }
}

impl MessageKind {
    /// The roles that may send this kind; empty for orchestrator-to-role kinds.
    pub fn senders(self) -> &'static [RoleName] {
        use RoleName::*;
        match self {
            MessageKind::Plan => &[Planner],
            MessageKind::ToolCall => &[Planner, Codegen],
            MessageKind::ChangeReady => &[Codegen],
            MessageKind::TestResults => &[TestRunner],
            MessageKind::Review => &[SecurityReview],
            MessageKind::Progress => &[ProgressEvaluator],
            MessageKind::Ledger | MessageKind::BudgetEvent => &[CostControl],
            MessageKind::Log => &RoleName::ALL,
            MessageKind::Task | MessageKind::ToolResult | MessageKind::Shutdown => &[],
        }
    }
}

/// The `command` driver needs a `command:` block with an argv and a token variable; the block
/// means nothing under another driver.
fn check_command(role: RoleName, policy: &crate::roles::RolePolicy) -> Result<(), RolesError> {
    let problem = match (&policy.command, policy.driver) {
        (None, Driver::Command) => "the command driver needs a `command:` block (argv, token_env)",
        (Some(_), d) if d != Driver::Command => "only the command driver reads a `command:` block",
        (Some(c), _) if c.argv.is_empty() => "argv is empty",
        (Some(c), _) if c.token_env.is_empty() || c.token_env.contains(['=', '\0']) => {
            "token_env is not a variable name"
        }
        (Some(c), _)
            if c.files
                .iter()
                .any(|f| !f.path.starts_with("{home}/") || f.path.contains("..")) =>
        {
            "files[].path must start with `{home}/` and have no `..`"
        }
        _ => return Ok(()),
    };
    Err(RolesError::CommandDriver { role, problem })
}

/// The `llm` driver needs an `llm:` block naming a model the gateway has a price for, a positive
/// output cap and turn cap, and a gateway to reach (`gateway:` block, `network: gateway`); the
/// block means nothing under another driver. Only codegen has a tool loop: a planner driven by a
/// model is refused rather than run deterministically under a model driver's name.
fn check_llm(roles: &RolesFile, role: RoleName, policy: &RolePolicy) -> Result<(), RolesError> {
    let base = format!("roles.{role}");
    let err = |field: String, problem: String| Err(RolesError::LlmDriver { field, problem });
    if role == RoleName::Planner && policy.driver != Driver::Deterministic {
        return err(
            format!("{base}.driver"),
            format!(
                "`{}` is not available for the planner: it derives the plan from the FR (deterministic)",
                policy.driver.as_str()
            ),
        );
    }
    let Some(llm) = &policy.llm else {
        if policy.driver == Driver::Llm {
            return err(
                format!("{base}.driver"),
                "the llm driver needs an `llm:` block (model, max_output_tokens)".into(),
            );
        }
        return Ok(());
    };
    if policy.driver != Driver::Llm {
        return err(
            format!("{base}.llm"),
            "only the llm driver reads an `llm:` block".into(),
        );
    }
    if llm.model.trim().is_empty() {
        return err(format!("{base}.llm.model"), "empty model name".into());
    }
    if llm.max_output_tokens == 0 {
        return err(
            format!("{base}.llm.max_output_tokens"),
            "must be greater than 0".into(),
        );
    }
    if llm.max_turns == 0 {
        return err(
            format!("{base}.llm.max_turns"),
            "must be greater than 0".into(),
        );
    }
    if policy.network == Network::None {
        return err(
            format!("{base}.network"),
            "the llm driver reaches its model through the gateway: use `network: gateway`".into(),
        );
    }
    let Some(gw) = &roles.gateway else {
        return err(
            format!("{base}.driver"),
            "the llm driver needs the model gateway: add a `gateway:` block".into(),
        );
    };
    if !gw.prices.contains_key(&llm.model) {
        return err(
            format!("{base}.llm.model"),
            format!(
                "`{}` has no price in gateway.prices (the gateway refuses a model it cannot estimate)",
                llm.model
            ),
        );
    }
    Ok(())
}

impl RolesFile {
    /// Checks everything parsing cannot. Returns the first problem found, in file order.
    pub fn validate(&self) -> Result<(), RolesError> {
        if self.version != 1 {
            return Err(RolesError::Version {
                found: self.version,
            });
        }
        self.validate_sandbox()?;
        for role in RoleName::ALL {
            if !self.roles.contains_key(&role) {
                return Err(RolesError::MissingRole { role });
            }
        }
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        for (role, policy) in &self.roles {
            let base = format!("roles.{role}");
            check_user(&mut users, format!("{base}.user"), &policy.user)?;
            for (i, p) in policy.read.iter().enumerate() {
                check_role_path(format!("{base}.read[{i}]"), p)?;
            }
            for (i, p) in policy.write.iter().enumerate() {
                let field = format!("{base}.write[{i}]");
                check_role_path(field.clone(), p)?;
                if !WRITABLE_PLACEHOLDERS
                    .iter()
                    .any(|ph| p == ph || p.starts_with(&format!("{ph}/")))
                {
                    return Err(RolesError::WriteOffVolume {
                        field,
                        path: p.clone(),
                    });
                }
            }
            if let Network::Allowlist(entries) = &policy.network {
                for (i, e) in entries.iter().enumerate() {
                    if !is_host_port(e) {
                        return Err(RolesError::BadAllowlistEntry {
                            field: format!("{base}.network.allowlist[{i}]"),
                            entry: e.clone(),
                        });
                    }
                }
            }
            for (i, c) in policy.commands.iter().enumerate() {
                if c.split_whitespace().next().is_none() {
                    return Err(RolesError::EmptyCommand {
                        field: format!("{base}.commands[{i}]"),
                    });
                }
            }
            for (i, kind) in policy.messages.iter().enumerate() {
                let senders = kind.senders();
                if !senders.contains(role) {
                    let allowed = if senders.is_empty() {
                        "the orchestrator".to_owned()
                    } else {
                        senders
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(RolesError::ForbiddenMessage {
                        field: format!("{base}.messages[{i}]"),
                        role: *role,
                        kind: *kind,
                        allowed,
                    });
                }
            }
            check_limits(&format!("{base}.limits"), &policy.limits)?;
            match (role, policy.driver) {
                (RoleName::Codegen, Driver::Deterministic) => {
                    return Err(RolesError::CodegenDeterministic)
                }
                (RoleName::Planner | RoleName::Codegen, _) | (_, Driver::Deterministic) => {}
                (role, driver) => {
                    return Err(RolesError::ModelDriverNotAllowed {
                        role: *role,
                        driver,
                    })
                }
            }
            check_command(*role, policy)?;
            check_llm(self, *role, policy)?;
        }
        check_user(&mut users, "gate.user".into(), &self.gate.user)?;
        check_user(
            &mut users,
            "orchestrator.user".into(),
            &self.orchestrator.user,
        )?;
        self.validate_budgets()?;
        let protected = self.protected()?;
        if !protected.is_protected("roles.yaml") {
            return Err(RolesError::RolesYamlUnprotected);
        }
        if self.approvers.is_empty() {
            return Err(RolesError::NoApprovers);
        }
        self.validate_severity_policy()?;
        self.validate_anomaly()?;
        for (i, a) in self.approvers.iter().enumerate() {
            if !is_user_name(a) {
                return Err(RolesError::BadUser {
                    field: format!("approvers[{i}]"),
                    user: a.clone(),
                });
            }
        }
        Ok(())
    }

    fn validate_anomaly(&self) -> Result<(), RolesError> {
        let a = &self.anomaly;
        let bad = |field: &str, problem: String| RolesError::BadAnomaly {
            field: format!("anomaly.{field}"),
            problem,
        };
        if a.lines_per_target == 0 {
            return Err(bad("lines_per_target", "must be greater than 0".into()));
        }
        if a.diff_stop_factor == 0 {
            return Err(bad("diff_stop_factor", "must be at least 1".into()));
        }
        if a.repeat_event < 2 {
            return Err(bad(
                "repeat_event",
                "must be at least 2 (one call is not a repeat)".into(),
            ));
        }
        if a.repeat_stop < a.repeat_event {
            return Err(bad(
                "repeat_stop",
                format!(
                    "{} is below repeat_event ({})",
                    a.repeat_stop, a.repeat_event
                ),
            ));
        }
        if !(a.jump_factor > 1.0 && a.jump_factor.is_finite()) {
            return Err(bad(
                "jump_factor",
                format!("{} must be a number above 1", a.jump_factor),
            ));
        }
        for rule in a.actions.keys() {
            if !crate::roles::ANOMALY_RULES.iter().any(|(r, _)| r == rule) {
                let names: Vec<&str> = crate::roles::ANOMALY_RULES
                    .iter()
                    .map(|(r, _)| *r)
                    .collect();
                return Err(bad(
                    &format!("actions.{rule}"),
                    format!("unknown rule `{rule}`; the rules are {}", names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn validate_severity_policy(&self) -> Result<(), RolesError> {
        let p = &self.severity_policy;
        if p.critical != FindingAction::Block {
            return Err(RolesError::CriticalNotBlocking { found: p.critical });
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (i, r) in p.rules.iter().enumerate() {
            let field = format!("severity_policy.rules[{i}].rule");
            let body = r.rule.strip_suffix('*').unwrap_or(&r.rule);
            let ok = !body.is_empty()
                && body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(RolesError::BadRuleId {
                    field,
                    rule: r.rule.clone(),
                });
            }
            if let Some(other) = seen.insert(&r.rule, field.clone()) {
                return Err(RolesError::DuplicateRule {
                    field,
                    rule: r.rule.clone(),
                    other,
                });
            }
        }
        Ok(())
    }

    fn validate_sandbox(&self) -> Result<(), RolesError> {
        for (i, p) in self.sandbox.system_read.iter().enumerate() {
            if !p.starts_with('/') || has_dotdot(p) {
                return Err(RolesError::SystemPathNotAbsolute {
                    field: format!("sandbox.system_read[{i}]"),
                    path: p.clone(),
                });
            }
        }
        for (i, name) in self.sandbox.env_allow.iter().enumerate() {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(RolesError::BadEnvName {
                    field: format!("sandbox.env_allow[{i}]"),
                    name: name.clone(),
                });
            }
        }
        if self.sandbox.volume.size_mb == 0 {
            return Err(RolesError::ZeroVolume);
        }
        Ok(())
    }

    fn validate_budgets(&self) -> Result<(), RolesError> {
        let b = &self.budgets;
        for (field, value) in [
            ("per_request_usd", b.per_request_usd),
            ("per_run_usd", b.per_run_usd),
            ("per_month_usd", b.per_month_usd),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(RolesError::BadBudget { field, value });
            }
        }
        if !(b.per_request_usd <= b.per_run_usd && b.per_run_usd <= b.per_month_usd) {
            return Err(RolesError::BudgetOrder {
                per_request: b.per_request_usd,
                per_run: b.per_run_usd,
                per_month: b.per_month_usd,
            });
        }
        if !(b.warn_pct > 0
            && b.warn_pct <= b.escalate_pct
            && b.escalate_pct <= b.stop_pct
            && b.stop_pct <= 100)
        {
            return Err(RolesError::Thresholds {
                warn: b.warn_pct,
                escalate: b.escalate_pct,
                stop: b.stop_pct,
            });
        }
        Ok(())
    }

    /// The protected-path matcher built from `protected_paths`.
    pub fn protected(&self) -> Result<ProtectedPaths, RolesError> {
        ProtectedPaths::new(&self.protected_paths)
    }
}

fn check_limits(base: &str, l: &Limits) -> Result<(), RolesError> {
    for (name, v) in [
        ("cpu_seconds", l.cpu_seconds),
        ("memory_mb", l.memory_mb),
        ("pids", l.pids),
        ("wall_seconds", l.wall_seconds),
        ("nofile", l.nofile),
        ("fsize_mb", l.fsize_mb),
    ] {
        if v == 0 {
            return Err(RolesError::ZeroLimit {
                field: format!("{base}.{name}"),
            });
        }
    }
    Ok(())
}

fn check_user(
    seen: &mut BTreeMap<String, String>,
    field: String,
    user: &str,
) -> Result<(), RolesError> {
    if !is_user_name(user) {
        return Err(RolesError::BadUser {
            field,
            user: user.to_owned(),
        });
    }
    if let Some(other) = seen.get(user) {
        return Err(RolesError::DuplicateUser {
            field,
            user: user.to_owned(),
            other: other.clone(),
        });
    }
    seen.insert(user.to_owned(), field);
    Ok(())
}

/// Whether `s` is a portable OS user name (the `useradd` default rule, at most 32 bytes).
pub fn is_user_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_');
    first_ok
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn has_dotdot(p: &str) -> bool {
    p.split('/').any(|seg| seg == "..")
}

fn check_role_path(field: String, p: &str) -> Result<(), RolesError> {
    let placeholder_ok = PLACEHOLDERS.iter().any(|ph| {
        p == *ph
            || p.strip_prefix(ph)
                .is_some_and(|rest| rest.starts_with('/') && !rest.contains(['{', '}']))
    });
    let absolute_ok = p.starts_with('/') && !p.contains(['{', '}']);
    if (placeholder_ok || absolute_ok) && !has_dotdot(p) {
        Ok(())
    } else {
        Err(RolesError::BadPath {
            field,
            path: p.to_owned(),
        })
    }
}

fn is_host_port(e: &str) -> bool {
    match e.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

/// Matcher for `protected_paths`: a repository-relative path is protected when it, or any of its
/// ancestor directories, matches one of the globs. `*` does not cross `/`; `**` does.
#[derive(Debug, Clone)]
pub struct ProtectedPaths {
    set: GlobSet,
}

impl ProtectedPaths {
    /// Compiles `patterns`; an invalid glob is an error naming its index.
    pub fn new(patterns: &[String]) -> Result<Self, RolesError> {
        let mut b = GlobSetBuilder::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|source| RolesError::BadGlob {
                    field: format!("protected_paths[{i}]"),
                    pattern: pattern.clone(),
                    source,
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|source| RolesError::BadGlob {
            field: "protected_paths".into(),
            pattern: patterns.join(", "),
            source,
        })?;
        Ok(Self { set })
    }

    /// Whether `path` (relative to the repository root, `/`-separated; a leading `./` or `/` is
    /// ignored) is protected.
    pub fn is_protected(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let mut prefix = String::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
            if self.set.is_match(&prefix) {
                return true;
            }
        }
        false
    }
}

/// Parses a glob the same way `ProtectedPaths` does, for callers that validate single patterns.
pub fn parse_glob(pattern: &str) -> Result<Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
}
