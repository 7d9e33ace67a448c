//! The command line: flags (each with an environment variable) → library
//! calls → output and one exit code. Errors are printed here, once, with
//! their causes.

mod args;
mod batch;
mod exit;
mod kubernetes;
mod output;
mod overlay;
mod shell;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::SubmitExit;

/// Builds, submits, watches and cancels the jobs that run a Wove payload on `wove-worker`.
#[derive(Debug, Parser)]
#[command(name = "wove-submit", version, about, after_long_help = exit::help())]
struct Cli {
    #[command(subcommand)]
    platform: Platform,
}

#[derive(Debug, Subcommand)]
enum Platform {
    /// Kubernetes Jobs.
    #[command(subcommand)]
    Kubernetes(kubernetes::Command),
    /// AWS Batch jobs.
    #[command(subcommand)]
    Batch(batch::Command),
    /// Print a shell completion script to stdout, e.g.
    /// `wove-submit completions bash > /usr/share/bash-completion/completions/wove-submit`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (wove-submit.1 and one per subcommand) into DIR.
    Manpages {
        /// The directory, made if missing.
        dir: std::path::PathBuf,
    },
}

/// A failure, and the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    exit: SubmitExit,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub(crate) fn new(exit: SubmitExit, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { exit, error: error.into() }
    }
}

/// Parse, run, print, exit.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { SubmitExit::Usage.into() } else { SubmitExit::Success.into() };
        }
    };
    let outcome = match cli.platform {
        Platform::Kubernetes(command) => kubernetes::run(command),
        Platform::Batch(command) => batch::run(command),
        Platform::Completions { shell } => shell::completions(shell),
        Platform::Manpages { dir } => shell::manpages(&dir),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(failure) => {
            eprintln!("wove-submit: {}", wove_submit::error_chain(failure.error.as_ref()));
            failure.exit.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
