//! The `wove-worker` binary: the built-in runners, nothing else.
use std::process::ExitCode;

fn main() -> ExitCode {
    wove_worker::run_cli(wove_worker::runner::Registry::builtin())
}
