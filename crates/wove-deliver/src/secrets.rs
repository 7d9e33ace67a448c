//! Signing secrets, read the one way both senders read them: the
//! whitespace-separated list in `WOVE_WORKER_SIGNING_SECRET`, then the lines
//! of `WOVE_WORKER_SIGNING_SECRET_FILE`, current first. Secrets never come
//! from the payload.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use wove_proto::sign::{Scheme, Secret, SignError};

/// Largest signing-secret file read: a few keys, not a device or a log.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Why the secrets cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The secret file could not be read.
    #[error("cannot read signing secret file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret is not valid for the scheme.
    #[error(transparent)]
    Secret(#[from] SignError),
}

/// The secrets read, parsed for a scheme, with their texts (so that a
/// program can keep them out of what it writes).
#[derive(Debug, Default)]
pub struct Loaded {
    /// Parsed, current first.
    pub secrets: Vec<Secret>,
    /// Each secret as written, in the same order.
    pub texts: Vec<String>,
}

/// Read the secrets of `env` (the variable's value) and then of `file`.
pub fn load(scheme: Scheme, env: Option<&str>, file: Option<&Path>) -> Result<Loaded, SecretsError> {
    let mut texts: Vec<String> = Vec::new();
    if let Some(all) = env {
        texts.extend(all.split_whitespace().map(str::to_string));
    }
    if let Some(path) = file {
        let content = read_file(path).map_err(|source| SecretsError::File { path: path.to_path_buf(), source })?;
        // An editor's byte-order mark is not part of the first secret.
        let content = content.strip_prefix('\u{feff}').unwrap_or(&content);
        texts.extend(content.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    let secrets =
        texts.iter().enumerate().map(|(i, t)| Secret::parse(scheme, t, i + 1)).collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded { secrets, texts })
}

fn read_file(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_SECRET_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::other(format!("larger than {MAX_SECRET_FILE} bytes: not a file of secrets")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_comes_first_then_the_file_without_its_bom_or_blank_lines() {
        let dir = std::env::temp_dir().join(format!("wove-deliver-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "\u{feff}third\n\n  fourth  \n").unwrap();
        let loaded = load(Scheme::WoveV1, Some("first second"), Some(&file)).unwrap();
        assert_eq!(loaded.texts, ["first", "second", "third", "fourth"]);
        assert_eq!(loaded.secrets.len(), 4);
        assert_eq!(loaded.secrets[2].as_bytes(), b"third");

        std::fs::write(&file, vec![b'k'; MAX_SECRET_FILE as usize + 1]).unwrap();
        let err = load(Scheme::WoveV1, None, Some(&file)).unwrap_err();
        assert!(matches!(err, SecretsError::File { .. }), "{err}");
        assert!(matches!(load(Scheme::WoveV1, None, Some(&dir.join("none"))), Err(SecretsError::File { .. })));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load(Scheme::WoveV1, None, None).unwrap().secrets.is_empty());
    }
}
