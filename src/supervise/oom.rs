//! Telling an OOM kill from any other SIGKILL.
//!
//! The kernel's OOM killer sends SIGKILL, which looks like any other kill.
//! cgroup v2 counts its kills in `memory.events` (`oom_kill N`): if the count
//! rose while the task ran and the task died of SIGKILL, memory is the likely
//! cause. Best effort: where the file cannot be read, nothing is claimed.

use std::path::{Path, PathBuf};

/// `memory.events` of the cgroup this process is in, when cgroup v2 is mounted
/// at `/sys/fs/cgroup` and the file is readable.
pub fn default_memory_events() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2 has a single line `0::/path`.
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')).join("memory.events");
    file.is_file().then_some(file)
}

/// The `oom_kill` count in a `memory.events` file.
pub fn oom_kills(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

/// A reading taken before the task starts, compared after it ends.
#[derive(Debug, Clone)]
pub struct OomWatch {
    path: Option<PathBuf>,
    before: Option<u64>,
}

impl OomWatch {
    /// Read the count now (if there is a file to read).
    pub fn start(path: Option<&Path>) -> Self {
        let before = path.and_then(oom_kills);
        Self { path: path.map(Path::to_path_buf), before }
    }

    /// Whether the OOM killer has struck in our cgroup since [`OomWatch::start`].
    pub fn fired(&self) -> bool {
        match (&self.path, self.before) {
            (Some(path), Some(before)) => oom_kills(path).is_some_and(|after| after > before),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_count_means_an_oom_kill() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n").unwrap();
        let watch = OomWatch::start(Some(&file));
        assert!(!watch.fired());
        std::fs::write(&file, "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n").unwrap();
        assert!(watch.fired());
        assert!(!OomWatch::start(None).fired());
        assert!(!OomWatch::start(Some(Path::new("/nonexistent/memory.events"))).fired());
    }
}
