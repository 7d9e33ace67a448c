//! `wove-worker completions SHELL` and `wove-worker manpages DIR`: both made
//! from the same clap definition the worker parses, so they cannot drift from it.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::exit::Exit;

/// Print the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Exit {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wove-worker", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Exit::Success,
        Err(_) => Exit::Internal,
    }
}

/// Write `wove-worker.1` and one page per subcommand into `dir` (made if
/// missing); 78 when it cannot be written.
pub fn manpages(dir: &Path) -> Exit {
    match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir)) {
        Ok(()) => Exit::Success,
        Err(e) => {
            tracing::error!("cannot write man pages to {}: {e}", dir.display());
            Exit::BadConfig
        }
    }
}
