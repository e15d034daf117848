//! `orchestrate-engine`: the whole `orchestrate` CLI. The `orchestrate` front execs it for every
//! command but `sandbox` (see `cli::front`); run directly, it behaves exactly like `orchestrate`.

fn main() -> std::process::ExitCode {
    orchestrate::cli::main()
}
