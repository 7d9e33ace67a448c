//! `wove-worker precompile IN.wasm OUT.cwasm`: compile a module or component
//! with exactly the engine configuration the WASM runner uses.

use crate::exit::Exit;

/// Compile `input` to `output`; 0 on success, 65 for an invalid module, 78
/// for a path that cannot be read or written.
pub fn precompile(input: &std::path::Path, output: &std::path::Path) -> Exit {
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
