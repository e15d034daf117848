//! A command as data: program and argv, shown as one shell-quoted line (what `--dry-run` prints).

use std::fmt;

use serde::Serialize;

/// One program run with arguments, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    /// Absolute path of the program.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
}

impl Cmd {
    /// `program args...`.
    pub fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// Quotes a word for display the way a POSIX shell would read it back.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}
