//! Finding runner executables: a task whose runner is not built in, say
//! `"runner": "ffmpeg-thumb"`, runs `wove-runner-ffmpeg-thumb` from the runner
//! path, the way git, cargo and kubectl find their plugins.
//!
//! A payload can be written by anyone who can create a Job, so only names of
//! a safe shape are looked up: no `/`, no `..`, nothing that could name a
//! program outside the runner path.

use std::path::{Path, PathBuf};

/// Prefix of every runner executable's file name.
pub const PREFIX: &str = "wove-runner-";
/// Longest runner name.
pub const MAX_NAME: usize = 64;

/// A runner name the lookup refuses, or one it could not find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The name has a shape that is never looked up.
    #[error(
        "runner name {0:?} is not allowed: runner names are 1 to {MAX_NAME} characters of a-z, 0-9, '-' and '_', \
         starting with a letter or digit"
    )]
    BadName(String),
    /// No directory of the runner path holds the executable.
    #[error("no runner {name:?}: it is not built in, and no executable {PREFIX}{name} is in {}", searched_list(.searched))]
    NotFound {
        /// The runner's name.
        name: String,
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
    },
}

fn searched_list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "any directory (the runner path is empty)".into();
    }
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether `name` may be looked up: lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit, at most [`MAX_NAME`] characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The executable for runner `name` in the first directory of `path` that has one.
pub fn find(name: &str, path: &[PathBuf]) -> Result<PathBuf, LookupError> {
    if !is_valid_name(name) {
        return Err(LookupError::BadName(name.to_string()));
    }
    let file = format!("{PREFIX}{name}");
    path.iter()
        .map(|dir| dir.join(&file))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| LookupError::NotFound { name: name.to_string(), searched: path.to_vec() })
}

/// One runner executable found on the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The runner's name (the file name without [`PREFIX`]).
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Whether an earlier directory already has one of that name (this one is never run).
    pub shadowed: bool,
}

/// Every runner executable on `path`, in lookup order.
pub fn list(path: &[PathBuf]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for dir in path {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut here: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_prefix(PREFIX)?.to_string();
                (is_valid_name(&name) && is_executable(&e.path())).then(|| (name, e.path()))
            })
            .collect();
        here.sort();
        for (name, path) in here {
            let shadowed = found.iter().any(|f| f.name == name);
            found.push(Found { name, path, shadowed });
        }
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_names_are_looked_up() {
        for good in ["ffmpeg-thumb", "a", "x_1", "3d"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in
            ["", "../bin/sh", "/bin/sh", "a/b", "..", ".hidden", "-x", "_x", "Upper", "sp ace", "a.b", &"a".repeat(65)]
        {
            assert!(!is_valid_name(bad), "{bad:?}");
            assert!(matches!(find(bad, &[PathBuf::from("/bin")]), Err(LookupError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_first_directory_wins_and_the_rest_are_shadowed() {
        use std::os::unix::fs::PermissionsExt as _;
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let make = |dir: &Path, file: &str, mode: u32| {
            let p = dir.join(file);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let a1 = make(first.path(), "wove-runner-a", 0o755);
        make(second.path(), "wove-runner-a", 0o755);
        let b2 = make(second.path(), "wove-runner-b", 0o755);
        make(first.path(), "wove-runner-not-executable", 0o644);
        make(first.path(), "unrelated", 0o755);
        let path = vec![first.path().to_path_buf(), second.path().to_path_buf()];
        assert_eq!(find("a", &path), Ok(a1.clone()));
        assert_eq!(find("b", &path), Ok(b2));
        let missing = find("not-executable", &path).unwrap_err();
        assert!(missing.to_string().contains(&first.path().display().to_string()), "{missing}");
        assert!(missing.to_string().contains(&second.path().display().to_string()), "{missing}");
        let listed = list(&path);
        let summary: Vec<_> = listed.iter().map(|f| (f.name.as_str(), f.shadowed)).collect();
        assert_eq!(summary, [("a", false), ("a", true), ("b", false)]);
        assert_eq!(listed[0].path, a1);
    }
}
