//! Preflight: load and validate roles.yaml, the FR and its config.yaml, and merge their limits
//! (the strictest value wins). Every error names the file, and where it can the line and field.

use std::path::{Path, PathBuf};

use protocol::config::ThreadConfig;
use protocol::fr::{Fr, FrLimits};
use protocol::load::{self, LoadError};
use protocol::merge::{self, MergeError};
use protocol::roles::RolesFile;

/// The project's default policy, used when the repository has no roles.yaml.
pub const DEFAULT_ROLES: &str = include_str!("../../../roles.yaml");

/// Why preflight refused.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// A document failed to load or validate (file, line, field in the message).
    #[error(transparent)]
    Load(Box<LoadError>),
    /// The built-in roles.yaml does not parse (a build defect).
    #[error("built-in roles.yaml: {source}")]
    BuiltinRoles {
        /// Cause.
        source: Box<LoadError>,
    },
    /// roles.yaml's gateway upstream is unusable (base URL, CA file).
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Gateway(Box<super::launch_sandbox::gateway::GatewayWiringError>),
    /// config.yaml loosens a limit or names a command the test-runner may not run.
    #[error("{path}: {source}")]
    Merge {
        /// The config file (or FR) involved.
        path: PathBuf,
        /// Cause.
        source: Box<MergeError>,
    },
}

impl From<LoadError> for PreflightError {
    fn from(e: LoadError) -> Self {
        PreflightError::Load(Box::new(e))
    }
}

impl PreflightError {
    /// True when the FR was refused for having no executable acceptance criterion.
    pub fn is_missing_acceptance(&self) -> bool {
        match self {
            PreflightError::Load(e) => match e.as_ref() {
                LoadError::Fr { source, .. } => {
                    matches!(source.as_ref(), protocol::fr::FrError::NoAcceptance)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Everything a run needs from the documents.
#[derive(Debug, Clone)]
pub struct Policy {
    /// roles.yaml.
    pub roles: RolesFile,
    /// Where roles.yaml came from (`<repo>/roles.yaml` or `built-in`).
    pub roles_source: String,
    /// The FR.
    pub fr: Fr,
    /// The FR file.
    pub fr_path: PathBuf,
    /// Its thread's config.yaml (default when absent).
    pub config: ThreadConfig,
    /// Effective run limits.
    pub limits: FrLimits,
    /// Effective cost ceiling, USD.
    pub cost_usd: f64,
    /// Approved test commands.
    pub test_commands: Vec<String>,
}

/// Loads and validates the documents of `fr_id` in `repo`.
pub fn load(repo: &Path, fr_id: &str) -> Result<Policy, PreflightError> {
    let roles_path = repo.join("roles.yaml");
    let (roles, roles_source) = if roles_path.is_file() {
        (
            load::load_roles(&roles_path)?,
            roles_path.display().to_string(),
        )
    } else {
        let roles: RolesFile = load::parse_yaml(Path::new("roles.yaml (built-in)"), DEFAULT_ROLES)
            .map_err(|source| PreflightError::BuiltinRoles {
                source: Box::new(source),
            })?;
        (roles, "built-in".to_owned())
    };
    #[cfg(target_os = "linux")]
    if let Some(g) = &roles.gateway {
        super::launch_sandbox::gateway::check_upstream(g)
            .map_err(|e| PreflightError::Gateway(Box::new(e)))?;
    }
    let fr_path = load::find_fr(repo, fr_id)?;
    let fr = load::load_fr(&fr_path)?;
    let config = load::load_config_for(&fr_path)?;
    let config_path = fr_path
        .parent()
        .map(|d| d.join("config.yaml"))
        .unwrap_or_default();
    let merge_err = |source| PreflightError::Merge {
        path: config_path.clone(),
        source: Box::new(source),
    };
    let limits = merge::effective_run_limits(&fr, &config).map_err(merge_err)?;
    let cost_usd = merge::effective_cost_ceiling_usd(&roles, &limits);
    let test_commands = merge::effective_test_commands(&roles, &fr, &config).map_err(merge_err)?;
    // The planner and the gate read the threshold from the FR: config.yaml may raise it.
    let mut fr = fr;
    fr.coverage = merge::effective_coverage(&fr, &config).map_err(merge_err)?;
    Ok(Policy {
        roles,
        roles_source,
        fr,
        fr_path,
        config,
        limits,
        cost_usd,
        test_commands,
    })
}
