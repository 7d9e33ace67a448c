//! `wove-worker`: runs one Wove task inside a Kubernetes Job or AWS Batch
//! container and reports it back to the weave.
//!
//! How the parts fit:
//! 1. [`cli`] turns flags and environment into a [`config::Config`].
//! 2. [`payload_source`] reads the payload (env, argument, file, or a URL
//!    through [`payload_fetch`], checked against its SHA-256) and
//!    `wove_proto` decodes it strictly; [`task_index`] picks this process's
//!    task from a many-task payload.
//! 3. A [`runner::Runner`] from the [`runner::Registry`] prepares and runs the
//!    task; process-based runners go through [`supervise`], which owns
//!    process groups, reaping, signal forwarding and output capture.
//! 4. [`report`] builds, signs and delivers the events, with retries.
//! 5. [`exit`] maps the outcome to a documented exit code.
//!
//! To add a runner without forking the worker, implement [`runner::Runner`]
//! and call [`run_cli`] with a registry that includes it (see
//! `examples/custom_runner.rs`).

pub mod cli;
pub mod commands;
pub mod config;
pub mod deadline;
pub mod exit;
pub mod logging;
pub mod payload_fetch;
pub mod payload_source;
pub mod redact;
pub mod report;
pub mod runner;
pub mod signals;
pub mod startup;
pub mod stdout;
pub mod supervise;
pub mod task_index;
pub mod termination_message;
pub mod worker;

pub use wove_proto as proto;

use std::process::ExitCode;

use clap::Parser as _;

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
