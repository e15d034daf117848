//! The `command` driver: a real coding-agent CLI (Codex CLI, Claude Code, aider, ...) runs as
//! codegen, inside codegen's sandbox, on the work tree. roles.yaml says how to run it
//! (`roles.codegen.command`: argv, env, the variable that carries the token, config files); the
//! driver starts the relay on the sandbox's loopback (the one TCP port Landlock allows), writes
//! the CLI's config into the throwaway HOME with the relay as its base URL and the run's gateway
//! token as its API key, and runs it with the FR text as its task. The CLI's own sandbox and
//! approval prompts are turned off in its argv: this sandbox is the boundary, and every model
//! turn it takes is metered and capped at the gateway.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use protocol::frame::{ChangeReady, Log, LogLevel, Message};

use crate::gateway::launch::{RELAY_PORT_ENV, SOCKET_ENV, TOKEN_ENV};
use crate::gateway::relay::{Relay, RelayError};
use crate::roles::input::CommandTask;
use crate::transport::{Transport, TransportError};

/// Errors of the command driver.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The run gave codegen no gateway.
    #[error("no model gateway in this run ({0} is unset): roles.yaml needs a `gateway:` block and codegen `network: gateway`")]
    NoGateway(&'static str),
    /// The relay port is not a port.
    #[error("{RELAY_PORT_ENV}={0} is not a TCP port")]
    Port(String),
    /// The relay's runtime could not be built.
    #[error("start the relay's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The relay could not listen.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A config file could not be written.
    #[error("write the CLI's file {path}: {source}")]
    File {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The CLI could not be started or waited for.
    #[error("run `{program}`: {source}")]
    Spawn {
        /// argv[0].
        program: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The frame socket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The values the placeholders of roles.yaml's `command:` block take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    /// `{task}`.
    pub task: String,
    /// `{base_url}`.
    pub base_url: String,
    /// `{home}`.
    pub home: String,
    /// `{worktree}`.
    pub worktree: String,
}

impl Placeholders {
    /// `s` with every placeholder replaced (one pass: a value containing `{home}` stays as is).
    pub fn apply(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let hit = [
                ("{task}", &self.task),
                ("{base_url}", &self.base_url),
                ("{home}", &self.home),
                ("{worktree}", &self.worktree),
            ]
            .into_iter()
            .find(|(k, _)| tail.starts_with(k));
            match hit {
                Some((k, v)) => {
                    out.push_str(v);
                    rest = &tail[k.len()..];
                }
                None => {
                    out.push('{');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Variables of the role that the CLI must not inherit: the frame socket, the role's signing key
/// path, and the gateway plumbing (the token reaches it only under `token_env`).
const WITHHELD: [&str; 5] = [
    "ORCHESTRATE_FRAME_FD",
    "ORCHESTRATE_KEY",
    SOCKET_ENV,
    TOKEN_ENV,
    RELAY_PORT_ENV,
];

/// Runs the CLI for iteration `iteration` and reports `change_ready` (the orchestrator scans
/// the work tree itself; nothing the CLI says is trusted).
pub fn iterate(
    t: &mut Transport,
    worktree: &Path,
    c: &CommandTask,
    iteration: u32,
) -> Result<(), CommandError> {
    let socket = std::env::var(SOCKET_ENV).map_err(|_| CommandError::NoGateway(SOCKET_ENV))?;
    let token = std::env::var(TOKEN_ENV).map_err(|_| CommandError::NoGateway(TOKEN_ENV))?;
    let port_s =
        std::env::var(RELAY_PORT_ENV).map_err(|_| CommandError::NoGateway(RELAY_PORT_ENV))?;
    let port: u16 = port_s.parse().map_err(|_| CommandError::Port(port_s))?;
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let relay = rt.block_on(Relay::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        PathBuf::from(socket),
    ))?;
    let vars = Placeholders {
        task: c.task.clone(),
        base_url: format!("http://{}/v1", relay.addr()),
        home: home.clone(),
        worktree: worktree.display().to_string(),
    };
    let program = c.settings.argv.first().cloned().unwrap_or_default();
    let status = run_cli(c, &vars, &token, worktree);
    rt.block_on(relay.stop());
    let summary = match &status {
        Ok(s) => format!("COMMAND `{program}` (iteration {iteration}) {s}"),
        Err(e) => format!("COMMAND `{program}` (iteration {iteration}) failed: {e}"),
    };
    eprintln!("codegen: {summary}");
    t.send(
        Message::Log(Log {
            level: if matches!(&status, Ok(s) if s.success()) {
                LogLevel::Info
            } else {
                LogLevel::Warn
            },
            message: summary.clone(),
        }),
        None,
    )?;
    if let Err(e @ CommandError::File { .. }) = status {
        return Err(e);
    }
    t.send(
        Message::ChangeReady(ChangeReady {
            iteration,
            files: vec![],
            summary,
        }),
        None,
    )?;
    Ok(())
}

fn run_cli(
    c: &CommandTask,
    vars: &Placeholders,
    token: &str,
    worktree: &Path,
) -> Result<ExitStatus, CommandError> {
    for f in &c.settings.files {
        write_file(&PathBuf::from(vars.apply(&f.path)), &vars.apply(&f.content))?;
    }
    let argv: Vec<String> = c.settings.argv.iter().map(|a| vars.apply(a)).collect();
    let program = argv.first().cloned().unwrap_or_default();
    let env: BTreeMap<String, String> = c
        .settings
        .env
        .iter()
        .map(|(k, v)| (k.clone(), vars.apply(v)))
        .collect();
    let mut cmd = Command::new(&program);
    cmd.args(argv.iter().skip(1))
        .current_dir(worktree)
        .stdin(Stdio::null())
        // The role's stderr is its log; the CLI's chatter goes there too.
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit());
    for k in WITHHELD {
        cmd.env_remove(k);
    }
    cmd.envs(&env).env(&c.settings.token_env, token);
    close_frame_fd_on_exec();
    let mut child = cmd.spawn().map_err(|source| spawn_err(&program, source))?;
    let deadline = Instant::now() + Duration::from_secs(c.timeout_s.max(1));
    loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|source| spawn_err(&program, source))?
        {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "codegen: `{program}` ran past {} s; killing it",
                c.timeout_s
            );
            let _ = child.kill();
            return child.wait().map_err(|source| spawn_err(&program, source));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_err(program: &str, source: std::io::Error) -> CommandError {
    CommandError::Spawn {
        program: program.to_owned(),
        source,
    }
}

/// The frame socket (inherited, so not close-on-exec) must not reach the CLI: a hostile agent
/// would speak the protocol as codegen.
fn close_frame_fd_on_exec() {
    let Some(fd) = std::env::var("ORCHESTRATE_FRAME_FD")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: fcntl on an fd number only reads/sets its descriptor flags; an fd that is not open
    // makes it fail with EBADF, which changes nothing.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

fn write_file(path: &Path, content: &str) -> Result<(), CommandError> {
    let err = |source| CommandError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
