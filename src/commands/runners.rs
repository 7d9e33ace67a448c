//! `wove-worker runners`: what a payload may name in this image.

use std::io::Write as _;

use crate::exit::Exit;
use crate::runner::{lookup, Registry};

/// Print the built-in runners, then each runner executable on `runner_path`
/// with its file (a later one of the same name is never run: it says so).
pub fn runners(registry: &Registry, runner_path: &[std::path::PathBuf]) -> Exit {
    let mut text = String::new();
    for name in registry.names() {
        text.push_str(&format!("{name:<24} built-in\n"));
    }
    for found in lookup::list(runner_path) {
        let note = if found.shadowed { "  (shadowed by the one above)" } else { "" };
        text.push_str(&format!("{:<24} {}{note}\n", found.name, found.path.display()));
    }
    if runner_path.is_empty() {
        text.push_str("(the runner path is empty)\n");
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Exit::Success,
        Err(_) => Exit::Internal,
    }
}
