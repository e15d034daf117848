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

use clap::{Parser, Subcommand};

use super::output::Output;
use super::{logging, sandbox, GlobalArgs};

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
    match FrontCli::try_parse_from(&args) {
        Ok(cli) => {
            logging::init(cli.global.verbose);
            let FrontCommand::Sandbox(a) = &cli.command;
            sandbox::main(&cli.global.context(), &Output::new(a.json()), a)
        }
        Err(_) => exec_engine(&args),
    }
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
