//! `wove-worker`: runs one Wove task inside a Kubernetes Job or AWS Batch
//! container and reports it back to the weave.
//!
//! How the parts fit:
//! 1. `cli` turns flags and environment into a [`config::Config`].
//! 2. `payload_source` reads the payload (env, argument, file, or a URL
//!    through `payload_fetch`, checked against its SHA-256) and
//!    `wove_proto` decodes it strictly; `task_index` picks this process's
//!    task from a many-task payload.
//! 3. A [`runner::Runner`] from the [`runner::Registry`] prepares and runs the
//!    task; process-based runners go through [`supervise`], which owns
//!    process groups, reaping, signal forwarding and output capture.
//! 4. `report` builds, signs and delivers the events, with retries.
//! 5. [`exit`] maps the outcome to a documented exit code.
//!
//! To add a runner without forking the worker, implement [`runner::Runner`]
//! and call [`run_cli`] with a registry that includes it (see
//! `examples/custom_runner.rs`).

#![deny(missing_docs)]

// What an embedder uses: the configuration, the runner trait with its context and
// registry, the supervisor a process-starting runner goes through, the signals it is
// given, the worker, and the exit codes.
pub mod config;
pub mod exit;
pub mod runner;
pub mod signals;
pub mod supervise;
pub mod worker;

// The worker's own.
pub(crate) mod cgroup;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod deadline;
pub(crate) mod logging;
pub(crate) mod payload_fetch;
pub(crate) mod payload_source;
pub(crate) mod redact;
pub(crate) mod report;
pub(crate) mod startup;
pub(crate) mod stdout;
pub(crate) mod task_index;
pub(crate) mod termination_message;

/// What the project's own integration tests and fuzz targets drive directly. Not part of the
/// API: no promise holds for it from one version to the next.
#[doc(hidden)]
pub mod internals {
    pub use crate::deadline::Deadline;
    pub use crate::report::{print_line, reply, retry, HttpSink, Requests, USER_AGENT};
    pub use crate::termination_message::{Summary, MAX_BYTES};
}

pub use wove_proto as proto;

use std::process::ExitCode;

use clap::Parser as _;

/// The command line's definition (every flag, its variable, the subcommands): what the man
/// pages, the completions and the documentation's tables are made from.
pub fn command() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}

/// The whole command line program, with the given runners: parse flags and
/// environment, run the payload, return the exit code.
pub fn run_cli(registry: runner::Registry) -> ExitCode {
    // Before anything else: a known signal state (what the parent left
    // blocked or ignored would reach every task).
    startup::reset_signals();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else is a configuration error.
            return if e.use_stderr() { exit::Exit::BadConfig.into() } else { ExitCode::SUCCESS };
        }
    };
    logging::init(cli.log_format, &cli.log);
    if let Some(command) = cli.command {
        // A tool command installs no handlers: SIGTERM ends it as usual.
        let _ = startup::unblock_handled();
        return commands::run(command, &registry).into();
    }
    let env = |name: &str| std::env::var(name).ok();
    let payload_arg = cli.payload.clone();
    let config = cli.into_config(env(proto::env::SIGNING_SECRET), env(proto::env::PAYLOAD));
    // Read once, kept in the config: nothing of them stays where a task could look.
    startup::seal(proto::env::SECRETS, payload_arg.as_deref());
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{}", wove_proto::error_chain(&e));
            return exit::Exit::BadConfig.into();
        }
    };
    // One thread: the worker waits on a child and a socket, and a lean
    // runtime keeps its own footprint small next to the task's.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return exit::Exit::Internal.into();
        }
    };
    let exit = runtime.block_on(worker::Worker::new(config, registry).run());
    tracing::info!(code = exit.code(), "exiting");
    exit.into()
}
