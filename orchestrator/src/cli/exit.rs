//! The exit codes of `orchestrate`: this table is the only place they are defined.
//!
//! | code | name             | meaning                                                                  |
//! |------|------------------|--------------------------------------------------------------------------|
//! | 0    | `Ok`             | success; a check found nothing wrong                                     |
//! | 1    | `Failed`         | the command worked and its answer is "no": a check failed, findings were reported, tampering was detected |
//! | 2    | `Usage`          | bad command line or invalid input: unknown flag, bad YAML, a policy that does not validate, a file `init` will not overwrite |
//! | 3    | `NoContainment`  | a containment layer the policy requires is unavailable (and `--allow-weaker` was not given) |
//! | 4    | `RunStopped`     | a run was stopped (budget, no progress, security violation, human stop, ...) |
//! | 5    | `Internal`       | internal or I/O error: a file or the state database could not be read or written |
//!
//! Scripts can rely on these: 1 means "look at the findings", 2 means "fix what you gave me",
//! 5 means "the tool could not do its job".

/// An exit code from the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// 0: success, nothing wrong.
    Ok = 0,
    /// 1: a check failed, findings reported, tampering detected.
    Failed = 1,
    /// 2: usage error or invalid input (bad YAML, invalid policy, refusing to overwrite).
    Usage = 2,
    /// 3: required containment unavailable.
    NoContainment = 3,
    /// 4: a run was stopped.
    RunStopped = 4,
    /// 5: internal or I/O error.
    Internal = 5,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

/// An error a subcommand returns: it knows which row of the table it belongs to.
pub trait Failure: std::error::Error {
    /// The exit code for this error.
    fn exit_code(&self) -> ExitCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_table() {
        let table = [
            (ExitCode::Ok, 0),
            (ExitCode::Failed, 1),
            (ExitCode::Usage, 2),
            (ExitCode::NoContainment, 3),
            (ExitCode::RunStopped, 4),
            (ExitCode::Internal, 5),
        ];
        for (c, n) in table {
            assert_eq!(c.code(), n, "{c:?}");
        }
    }
}
