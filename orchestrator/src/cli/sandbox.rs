//! `orchestrate sandbox exec --role ROLE [--volume DIR] [--json] [--allow-weaker] -- CMD...`:
//! one command under a role's full containment from roles.yaml. The work is in
//! `sandbox::exec` (policy → plan → jail); this file maps roles.yaml onto it, picks the volume and
//! the toolchain, and turns the launch report into an exit status.
//!
//! Exit status: the command's own (a signal n → 128 + n, the wall clock → 124, a missing
//! command → 127); 2 for an unknown role or a bad roles.yaml; 3 when a required layer cannot be
//! applied (the error names it; the command never ran); 5 for I/O errors.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use protocol::load::LoadError;
use protocol::roles::{RoleName, RolesFile};
use sandbox::exec::{self, ExecError, ExecRequest};

use crate::containment::{role_spec, toolchain_dirs};
use sandbox::linux::launch::Launcher;
use sandbox::plan::{Layer, PlanError};
use sandbox::report::{LaunchReport, LayerStatus};

use super::context::{Context, ContextError};
use super::exit::{ExitCode, Failure};
use super::logging;
use super::output::Output;
use super::GlobalArgs;

/// `orchestrate sandbox ...`
#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    command: SandboxCommand,
}

impl SandboxArgs {
    /// True when `--json` was given.
    pub fn json(&self) -> bool {
        match &self.command {
            SandboxCommand::Exec(e) => e.json,
            SandboxCommand::Jail => false,
        }
    }
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Run CMD under ROLE's containment from roles.yaml and pass its exit status through.
    Exec(ExecArgs),
    /// The jail helper the run engine starts (plan on fd 3, report to fd 4); not for humans.
    #[command(name = "__jail", hide = true)]
    Jail,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The role whose policy applies (planner, codegen, security-review, test-runner,
    /// cost-control, progress-evaluator).
    #[arg(long)]
    role: String,
    /// The sandbox volume (kept afterwards: its `upper/` is the diff). Default: a throwaway
    /// volume under the state directory, removed when the command ends.
    #[arg(long, value_name = "DIR")]
    volume: Option<PathBuf>,
    /// roles.yaml to use (default: roles.yaml at the repository's top level).
    #[arg(long, value_name = "FILE")]
    roles: Option<PathBuf>,
    /// The cost-control gateway's unix socket, bound into roles with `network: gateway`
    /// (without it they get loopback only).
    #[arg(long, value_name = "SOCKET")]
    gateway: Option<PathBuf>,
    /// Run even if a required layer cannot be applied; the report lists what is missing.
    #[arg(long)]
    allow_weaker: bool,
    /// Print the launch report (layers live, exit) as JSON, as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Write the launch report as JSON to FILE instead, so the command's stdout stays its own.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Switch a layer off (tests only). A required layer needs --allow-weaker too; the report
    /// and stderr always say it was off.
    #[arg(long = "layer-off", value_name = "LAYER", hide = true)]
    layer_off: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    argv: Vec<String>,
}

/// Errors of `orchestrate sandbox`.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The repository or state directory could not be resolved.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// roles.yaml did not load or validate.
    #[error(transparent)]
    Roles(#[from] protocol::load::LoadError),
    /// `--role` is not one of the six.
    #[error(transparent)]
    UnknownRole(#[from] protocol::roles::UnknownRole),
    /// roles.yaml validated but has no policy for the role.
    #[error("roles.yaml has no policy for role {0}")]
    NoPolicy(String),
    /// `--layer-off` names no layer.
    #[error("--layer-off {0}: unknown layer (known: identity mount pid ipc uts network landlock seccomp rlimits cgroups env)")]
    UnknownLayer(String),
    /// `--report FILE` could not be written.
    #[error("writing the launch report to {path}: {source}")]
    Report {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Creating the throwaway volume's parent failed.
    #[error("creating the throwaway volume under {path}: {source}")]
    Volume {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Preparing or launching failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A required layer could not be applied: the command did not run.
    #[error("containment layer {layer} could not be applied for role {role}: {error} (use --allow-weaker to run without it)")]
    LayerFailed {
        /// The role.
        role: String,
        /// The layer.
        layer: String,
        /// What the kernel said.
        error: String,
    },
    /// A setup step that belongs to no layer failed (e.g. chdir).
    #[error("setting up the sandbox for role {role}: {error}")]
    Setup {
        /// The role.
        role: String,
        /// What failed.
        error: String,
    },
}

impl Failure for SandboxError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SandboxError::Roles(_)
            | SandboxError::UnknownRole(_)
            | SandboxError::NoPolicy(_)
            | SandboxError::UnknownLayer(_) => ExitCode::Usage,
            SandboxError::Context(e) => e.exit_code(),
            SandboxError::LayerFailed { .. } => ExitCode::NoContainment,
            SandboxError::Exec(e) => match e {
                ExecError::NoUser { .. } | ExecError::NotRoot { .. } => ExitCode::NoContainment,
                ExecError::Plan(PlanError::RequiredLayerOff { .. })
                | ExecError::Plan(PlanError::IdentityUnprivileged) => ExitCode::NoContainment,
                ExecError::Plan(_) | ExecError::Placeholder { .. } => ExitCode::Usage,
                _ => ExitCode::Internal,
            },
            SandboxError::Volume { .. }
            | SandboxError::Report { .. }
            | SandboxError::Setup { .. } => ExitCode::Internal,
        }
    }
}

/// How `sandbox exec` gets the policy: `(roles.yaml, the state directory's cache/ if any)`.
/// `Ok(None)`: this binary cannot load it (the `orchestrate` front, which never parses YAML,
/// on a cache miss); the caller hands the whole command line to the engine.
pub type RolesLoader = fn(&Path, Option<&Path>) -> Result<Option<RolesFile>, LoadError>;

/// The engine's loader: parses roles.yaml, through the parsed copy when there is a state
/// directory (YAML parsing would be a tenth of a launch).
pub fn load_roles_full(path: &Path, cache: Option<&Path>) -> Result<Option<RolesFile>, LoadError> {
    match cache {
        Some(dir) => protocol::load_cache::load_roles_cached(path, dir),
        None => protocol::load::load_roles(path),
    }
    .map(Some)
}

/// The front's loader: the parsed copy only.
pub fn load_roles_cached_only(
    path: &Path,
    cache: Option<&Path>,
) -> Result<Option<RolesFile>, LoadError> {
    match cache {
        Some(dir) => protocol::load_cache::read_cached(path, dir),
        None => Ok(None),
    }
}

/// `orchestrate sandbox ...` as the whole process: the command's exact status, or the error's
/// row of the exit-code table; `None` when `load` could not load the policy (see
/// [`RolesLoader`]). Sets up logging itself: for `exec`, only once the launch's pid 1 is forked.
/// `pre`: a pid 1 the caller forked for an `exec` with every layer (the front, before parsing).
pub fn main(
    global: &GlobalArgs,
    args: &SandboxArgs,
    load: RolesLoader,
    pre: Option<exec::Early>,
) -> Option<std::process::ExitCode> {
    let out = Output::new(args.json());
    let result = match &args.command {
        SandboxCommand::Exec(e) => {
            let started = start(e, pre);
            logging::init(global.verbose);
            started.and_then(|s| exec_cmd(&global.context(), &out, e, s, load))
        }
        SandboxCommand::Jail => {
            drop(pre);
            logging::init(global.verbose);
            Ok(Some(jail()))
        }
    };
    match result {
        Ok(Some(status)) => Some(std::process::ExitCode::from(status)),
        Ok(None) => None,
        Err(e) => {
            let code = e.exit_code();
            out.error(&e, code);
            Some(code.into())
        }
    }
}

/// Runs `orchestrate sandbox ...` in a process that has already set up logging;
/// `Ok(code)` is the process's exit status.
pub fn run(ctx: &Context, out: &Output, args: &SandboxArgs) -> Result<u8, SandboxError> {
    match &args.command {
        SandboxCommand::Exec(e) => {
            let started = start(e, None)?;
            Ok(exec_cmd(ctx, out, e, started, load_roles_full)?.unwrap_or(125))
        }
        SandboxCommand::Jail => Ok(jail()),
    }
}

fn jail() -> u8 {
    u8::try_from(sandbox::linux::jail::jail_main()).unwrap_or(125)
}

/// A throwaway volume, removed on drop.
struct Throwaway(PathBuf);

impl Drop for Throwaway {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }) {
            tracing::warn!(path = %self.0.display(), error = %e, "removing the throwaway volume");
        }
    }
}

fn throwaway_volume(ctx: &Context, role: &str) -> Result<Throwaway, SandboxError> {
    let parent = ctx.state_dir()?.join("sandbox");
    std::fs::create_dir_all(&parent).map_err(|source| SandboxError::Volume {
        path: parent.clone(),
        source,
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(Throwaway(
        parent.join(format!("{role}-{}-{nanos}", std::process::id())),
    ))
}

/// What `exec` knows from its command line alone, and its pid 1 if it could fork it already.
struct Started {
    role: RoleName,
    enabled: BTreeSet<Layer>,
    early: Option<exec::Early>,
}

/// Parses the role and the layers and forks the launch's pid 1 (see `exec::start_early`) unless
/// the caller did already (`pre`): first thing, so it builds its namespaces on the other core
/// while this process does the rest.
fn start(args: &ExecArgs, pre: Option<exec::Early>) -> Result<Started, SandboxError> {
    let role: RoleName = args.role.parse()?;
    let mut enabled: BTreeSet<Layer> = Layer::ALL.into_iter().collect();
    for name in &args.layer_off {
        let layer = Layer::parse(name).ok_or_else(|| SandboxError::UnknownLayer(name.clone()))?;
        enabled.remove(&layer);
    }
    if !args.layer_off.is_empty() {
        // Never silent: the report says so as well.
        eprintln!(
            "orchestrate: warning: layers switched off for this launch: {}",
            args.layer_off.join(" ")
        );
    }
    // pid 1 builds its namespaces on the other core while this process loads the policy and
    // prepares the volume; any error from here on drops it (killed and reaped).
    // A pid 1 forked on a guess of all layers that turns out wrong is replaced when the plan
    // comes (`Early::run`); with layers off, fork for those instead.
    let early = match pre {
        Some(pre) if args.layer_off.is_empty() => Some(pre),
        _ => exec::start_early(&enabled),
    };
    Ok(Started {
        role,
        enabled,
        early,
    })
}

/// `sandbox exec` after [`start`]. `Ok(None)`: `load` could not load the policy, and nothing ran.
fn exec_cmd(
    ctx: &Context,
    out: &Output,
    args: &ExecArgs,
    started: Started,
    load: RolesLoader,
) -> Result<Option<u8>, SandboxError> {
    let Started {
        role,
        enabled,
        early,
    } = started;
    let repo = ctx.repo()?;
    let roles_path = args
        .roles
        .clone()
        .unwrap_or_else(|| repo.join("roles.yaml"));
    let cache = ctx.state_dir().ok().map(|s| s.join("cache"));
    let Some(roles) = load(&roles_path, cache.as_deref())? else {
        return Ok(None);
    };
    let (spec, sb) =
        role_spec(&roles, role).ok_or_else(|| SandboxError::NoPolicy(args.role.clone()))?;
    let (volume, _throwaway) = match &args.volume {
        Some(v) => (absolute(v), None),
        None => {
            let t = throwaway_volume(ctx, role.as_str())?;
            (t.0.clone(), Some(t))
        }
    };
    let req = ExecRequest {
        role: spec,
        sandbox: sb,
        repo: absolute(&repo),
        volume,
        toolchain: toolchain_dirs(),
        gateway_socket: args.gateway.clone(),
        allow_weaker: args.allow_weaker,
        identity: None,
        enabled,
        cgroup: sandbox::probe::host_cgroup(),
        argv: args.argv.clone(),
        pass_fds: Vec::new(),
        extra_env: Vec::new(),
    };
    let launcher = Launcher::this_exe(&["sandbox", "__jail"]).map_err(ExecError::from)?;
    let report = exec::exec(&req, &launcher, early)?;
    finish(out, args, &report).map(Some)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
}

fn finish(out: &Output, args: &ExecArgs, report: &LaunchReport) -> Result<u8, SandboxError> {
    if let Some(path) = &args.report {
        let text = serde_json::to_vec_pretty(report).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| SandboxError::Report {
            path: path.clone(),
            source,
        })?;
    } else if args.json {
        // The command owned stdout until now; the report is its last line.
        if let Ok(line) = serde_json::to_string(report) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    } else {
        let missing: Vec<String> = report
            .layers
            .iter()
            .filter(|l| l.status != LayerStatus::Applied)
            .map(|l| l.layer.name().to_owned())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "orchestrate: role {} ran WEAKER, without: {}",
                report.role,
                missing.join(" ")
            );
        }
    }
    let _ = out;
    if let Some(f) = &report.setup_failure {
        return Err(match f.layer {
            Some(layer) => SandboxError::LayerFailed {
                role: report.role.clone(),
                layer: layer.name().to_owned(),
                error: f.error.clone(),
            },
            None => SandboxError::Setup {
                role: report.role.clone(),
                error: f.error.clone(),
            },
        });
    }
    Ok(u8::try_from(report.exit_code()).unwrap_or(255))
}
