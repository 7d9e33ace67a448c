//! The `wove-submit` program: `wove-submit kubernetes render|submit|status|wait|logs|cancel`.
//!
//! Its modules live in `src/cli/`; everything they call is the library.
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::run()
}
