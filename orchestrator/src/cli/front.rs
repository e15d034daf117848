//! The `orchestrate` binary is a small front: `orchestrate sandbox ...` runs here, and every other
//! command line is handed, unchanged and in the same process (`execv`), to `orchestrate-engine`
//! next to it, which is the whole CLI (run engine, gateway, gate client, audit, ...).
//!
//! Why: launching one contained role is the hot path (the run engine and `sandbox exec` do it for
//! every role process), and a process that carries the whole engine costs about 0.7 ms more to
//! start, fork and exit than one that carries only clap, the roles loader and the jail. The front
//! links only those, so launching a role costs what its containment costs. A command the front
//! does not parse (anything but `sandbox`, `--help`, `--version`, a usage error) goes to the
//! engine, which prints the same help and errors it always did.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use ::sandbox::plan::Layer;
use clap::{Parser, Subcommand};

use super::{sandbox, GlobalArgs};

/// The name of the full CLI, installed next to `orchestrate`.
pub const ENGINE: &str = "orchestrate-engine";

/// What the front parses itself: the global options and `sandbox`.
#[derive(Debug, Parser)]
#[command(
    name = "orchestrate",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct FrontCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: FrontCommand,
}

#[derive(Debug, Subcommand)]
enum FrontCommand {
    Sandbox(sandbox::SandboxArgs),
}

/// `orchestrate`'s `main`.
pub fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Before clap (~0.1 ms): the launch's pid 1, so its namespaces are under way meanwhile.
    let pre = looks_like_exec(&args)
        .then(|| ::sandbox::exec::start_early(&Layer::ALL.into_iter().collect()))
        .flatten();
    match FrontCli::try_parse_from(&args) {
        Ok(cli) => {
            let FrontCommand::Sandbox(a) = &cli.command;
            // A policy the front cannot load (no parsed copy yet): the engine parses it.
            sandbox::main(&cli.global, a, sandbox::load_roles_cached_only, pre)
                .unwrap_or_else(|| exec_engine(&args))
        }
        Err(_) => {
            drop(pre);
            exec_engine(&args)
        }
    }
}

/// A guess, for forking early only (clap decides what the command line means): `sandbox exec`
/// with every layer on. A wrong guess costs one killed child.
fn looks_like_exec(args: &[OsString]) -> bool {
    let words: Vec<&OsString> = args.iter().skip(1).take_while(|a| *a != "--").collect();
    words
        .windows(2)
        .any(|w| w[0] == "sandbox" && w[1] == "exec")
        && !words
            .iter()
            .any(|w| w.as_encoded_bytes().starts_with(b"--layer-off"))
}

/// `orchestrate-engine` in the directory of the running executable.
pub fn engine_path() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(ENGINE))
}

/// Replaces this process with the engine, same arguments, same `argv[0]`, same pid.
fn exec_engine(args: &[OsString]) -> std::process::ExitCode {
    let err = match engine_path() {
        Ok(engine) => {
            let mut cmd = std::process::Command::new(&engine);
            if let Some(arg0) = args.first() {
                cmd.arg0(arg0);
            }
            let e = cmd.args(args.iter().skip(1)).exec();
            format!("cannot run {}: {e}", engine.display())
        }
        Err(e) => format!("cannot find {ENGINE}: {e}"),
    };
    eprintln!("orchestrate: {err} (it is installed next to `orchestrate`; reinstall both)");
    super::exit::ExitCode::Internal.into()
}
