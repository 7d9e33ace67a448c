//! Subcommands that do not run a payload.

use crate::cli::Tool;
use crate::exit::Exit;

/// Run a tool command and say how it went.
pub fn run(tool: Tool) -> Exit {
    match tool {
        #[cfg(feature = "wasm")]
        Tool::Precompile { input, output } => precompile(&input, &output),
    }
}

#[cfg(feature = "wasm")]
fn precompile(input: &std::path::Path, output: &std::path::Path) -> Exit {
    let bytes = match std::fs::read(input) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot read {}: {e}", input.display());
            return Exit::BadConfig;
        }
    };
    let started = std::time::Instant::now();
    let compiled = match crate::runner::wasm::engine::precompile(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{}: {e}", input.display());
            return Exit::BadPayload;
        }
    };
    if let Err(e) = std::fs::write(output, &compiled) {
        tracing::error!("cannot write {}: {e}", output.display());
        return Exit::BadConfig;
    }
    tracing::info!(
        input = %input.display(), output = %output.display(), bytes = compiled.len(),
        took = ?started.elapsed(), "precompiled"
    );
    Exit::Success
}
