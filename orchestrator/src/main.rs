//! `orchestrate`: the front. `sandbox ...` runs here; everything else is exec'd into
//! `orchestrate-engine` (see `cli::front`).

fn main() -> std::process::ExitCode {
    orchestrate::cli::front::main()
}
