//! Subcommands that do not run a payload, one file each.

#[cfg(feature = "wasm")]
pub mod precompile;
pub mod runners;
pub mod shell;

use crate::cli::Command;
use crate::exit::Exit;
use crate::runner::Registry;

/// Run a subcommand and say how it went.
pub fn run(command: Command, registry: &Registry) -> Exit {
    match command {
        Command::Runners { runner_path } => {
            let path = runner_path.unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
            runners::runners(registry, &crate::config::split_path(&path))
        }
        #[cfg(feature = "wasm")]
        Command::Precompile { input, output } => precompile::precompile(&input, &output),
        Command::Completions { shell } => shell::completions(shell),
        Command::Manpages { dir } => shell::manpages(&dir),
    }
}
