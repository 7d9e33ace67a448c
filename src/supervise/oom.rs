//! Telling an out-of-memory kill from any other SIGKILL, on cgroup v2 and v1.
//!
//! The kernel's OOM killer sends SIGKILL, which looks like any other kill.
//! The task runs in the worker's memory cgroup (the container's), and both
//! cgroup versions count that cgroup's OOM kills: v2 in `memory.events`, v1
//! (AWS Batch's ECS-optimized Amazon Linux 2 hosts, older Kubernetes nodes)
//! in `memory.oom_control`, both as a line `oom_kill N`. If the count rose
//! while the task ran and the task died of SIGKILL, it was the OOM killer.
//! The limit it ran into and the peak usage come from the same directory.
//! Where none of this can be read, nothing is claimed.

use crate::cgroup::MemoryCgroup;

/// What the cgroup says about an OOM kill: its limit and peak, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomKill {
    /// The limit the task ran into, in bytes.
    pub limit: Option<u64>,
    /// The highest usage the cgroup recorded, in bytes.
    pub peak: Option<u64>,
}

impl OomKill {
    /// `the memory limit is 100 MiB; peak usage 100 MiB`, from what is known.
    pub fn describe(&self) -> String {
        let mib = |b: u64| format!("{} MiB", (b as f64 / (1024.0 * 1024.0)).round() as u64);
        match (self.limit, self.peak) {
            (Some(limit), Some(peak)) => format!("the memory limit is {}; peak usage {}", mib(limit), mib(peak)),
            (Some(limit), None) => format!("the memory limit is {}", mib(limit)),
            (None, Some(peak)) => format!("no memory limit is set here; peak usage {}", mib(peak)),
            (None, None) => "the cgroup reports no limit".to_string(),
        }
    }
}

/// A reading taken before the task starts, compared after it ends.
#[derive(Debug, Clone)]
pub struct OomWatch {
    cgroup: Option<MemoryCgroup>,
    before: Option<u64>,
}

impl OomWatch {
    /// Read the count now (if there is a cgroup to read).
    pub fn start(cgroup: Option<&MemoryCgroup>) -> Self {
        let before = cgroup.and_then(MemoryCgroup::oom_kills);
        Self { cgroup: cgroup.cloned(), before }
    }

    /// The OOM kill, if the OOM killer has struck in our cgroup since [`OomWatch::start`].
    pub fn fired(&self) -> Option<OomKill> {
        let cgroup = self.cgroup.as_ref()?;
        let (before, after) = (self.before?, cgroup.oom_kills()?);
        (after > before).then(|| OomKill { limit: cgroup.limit(), peak: cgroup.peak() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Version;

    fn fake(version: Version, files: &[(&str, &str)]) -> (tempfile::TempDir, MemoryCgroup) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let cgroup = MemoryCgroup { dir: dir.path().to_path_buf(), version };
        (dir, cgroup)
    }

    #[test]
    fn a_rising_count_means_an_oom_kill_on_v2() {
        let (dir, cgroup) = fake(
            Version::V2,
            &[
                ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
                ("memory.max", "104857600\n"),
                ("memory.peak", "104853504\n"),
            ],
        );
        let watch = OomWatch::start(Some(&cgroup));
        assert_eq!(watch.fired(), None);
        std::fs::write(dir.path().join("memory.events"), "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n").unwrap();
        let kill = watch.fired().unwrap();
        assert_eq!((kill.limit, kill.peak), (Some(104_857_600), Some(104_853_504)));
        assert_eq!(kill.describe(), "the memory limit is 100 MiB; peak usage 100 MiB");
        assert_eq!(OomWatch::start(None).fired(), None);
    }

    #[test]
    fn v1_counts_in_oom_control_and_reports_no_limit_as_none() {
        let (dir, cgroup) = fake(
            Version::V1,
            &[
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.max_usage_in_bytes", "52428800\n"),
            ],
        );
        let watch = OomWatch::start(Some(&cgroup));
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        let kill = watch.fired().unwrap();
        assert_eq!(kill.limit, None, "v1's 'no limit' is not a limit");
        assert_eq!(kill.describe(), "no memory limit is set here; peak usage 50 MiB");
        assert_eq!(cgroup.counter_file(), dir.path().join("memory.oom_control"));
    }

    #[test]
    fn an_unreadable_cgroup_claims_nothing() {
        let gone = MemoryCgroup { dir: "/nonexistent".into(), version: Version::V2 };
        assert_eq!(OomWatch::start(Some(&gone)).fired(), None);
        let (_dir, old_kernel) = fake(Version::V1, &[("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")]);
        assert_eq!(OomWatch::start(Some(&old_kernel)).fired(), None, "kernels before 4.13 have no oom_kill line");
    }
}
