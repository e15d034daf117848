//! The single-threaded jail helper: `sandbox::linux::launch` starts it with the plan on fd 3 and
//! reads the report from fd 4. Exits with the command's status (signal n → 128 + n).

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(orchestrate_sandbox::linux::jail::jail_main());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("orchestrate-jail: Linux only");
    std::process::exit(125);
}
