//! `wove-submit completions SHELL` and `wove-submit manpages DIR`, made from
//! the clap definition the program parses, so they cannot drift from it.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory as _;

use super::{Cli, Failure, SubmitExit};

/// Print the completion script for `shell` to stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<SubmitExit, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wove-submit", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).map_err(|e| Failure::new(SubmitExit::Refused, e))?;
    Ok(SubmitExit::Success)
}

/// Write `wove-submit.1` and one page per subcommand into `dir` (made if missing).
pub(super) fn manpages(dir: &Path) -> Result<SubmitExit, Failure> {
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .map_err(|e| Failure::new(SubmitExit::Refused, format!("cannot write man pages to {}: {e}", dir.display())))?;
    Ok(SubmitExit::Success)
}
