//! How a child process ended: the status `waitpid` reports.

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
}

impl ChildExit {
    /// A short human description: `exit code 2`, `signal 9 (SIGKILL)`.
    pub fn describe(self) -> String {
        match self {
            Self::Exited(code) => format!("exit code {code}"),
            Self::Signaled(sig) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(s) => format!("signal {sig} ({s})"),
                Err(_) => format!("signal {sig}"),
            },
        }
    }
}
