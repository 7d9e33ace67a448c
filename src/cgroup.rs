//! The memory cgroup a task runs in: where it is (found from this process's
//! `/proc/self/cgroup` and `mountinfo`, or named by the operator) and what it says (the OOM
//! kill count, the limit, the peak), on cgroup v2 and v1. Reading it is all this module does;
//! what a rising count means is [`crate::supervise::oom`]'s.

use std::path::{Path, PathBuf};

/// Which cgroup interface a directory speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1's memory controller: `memory.oom_control`, `memory.limit_in_bytes`.
    V1,
    /// cgroup v2: `memory.events`, `memory.max`, `memory.peak`.
    V2,
}

/// A memory cgroup: where OOM kills are counted and the limit is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The cgroup's directory.
    pub dir: PathBuf,
    /// Its interface.
    pub version: Version,
}

/// v1 reports "no limit" as a huge page-aligned number; anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

impl MemoryCgroup {
    /// The memory cgroup this process is in, found from `/proc/self/cgroup`
    /// and `/proc/self/mountinfo`: the v1 memory hierarchy if the controller is
    /// mounted there, else the v2 one.
    pub fn of_this_process() -> Option<Self> {
        let text = |path, expected| String::from_utf8(crate::startup::read_proc(path, expected).ok()?).ok();
        let cgroups = text("/proc/self/cgroup", 4096)?;
        let mounts = text("/proc/self/mountinfo", 64 * 1024)?;
        locate(&cgroups, &mounts).filter(|c| c.counter_file().is_file())
    }

    /// A cgroup given by the operator: its directory, or its `memory.events`
    /// (v2) or `memory.oom_control` (v1) file.
    pub fn from_path(path: &Path) -> Option<Self> {
        let (dir, file) = if path.is_dir() { (path, None) } else { (path.parent()?, path.file_name()) };
        let version = match file.and_then(|f| f.to_str()) {
            Some("memory.events") => Version::V2,
            Some("memory.oom_control") => Version::V1,
            Some(_) => return None,
            None if dir.join("memory.oom_control").is_file() => Version::V1,
            None => Version::V2,
        };
        Some(Self { dir: dir.to_path_buf(), version })
    }

    /// The file with the `oom_kill` count.
    pub fn counter_file(&self) -> PathBuf {
        self.dir.join(match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        })
    }

    /// How many processes the OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.counter_file()).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
    }

    /// The memory limit in bytes, when there is one.
    pub fn limit(&self) -> Option<u64> {
        let (file, unlimited) = match self.version {
            Version::V1 => ("memory.limit_in_bytes", V1_UNLIMITED),
            Version::V2 => ("memory.max", u64::MAX),
        };
        read_number(&self.dir.join(file)).filter(|&n| n < unlimited)
    }

    /// The highest usage in bytes the cgroup reports, where it reports one.
    pub fn peak(&self) -> Option<u64> {
        read_number(&self.dir.join(match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        }))
    }
}

fn read_number(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The memory cgroup directory for a process, from its `/proc/<pid>/cgroup`
/// and `mountinfo` texts.
pub fn locate(cgroups: &str, mountinfo: &str) -> Option<MemoryCgroup> {
    // v1: `N:memory:/path` (controllers may be co-mounted: `N:memory,hugetlb:/path`).
    let v1 = cgroups.lines().find_map(|l| {
        let mut fields = l.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|c| c == "memory").then_some(path)
    });
    if let Some(path) = v1 {
        if let Some(dir) =
            mounted_dir(mountinfo, path, |fstype, opts| fstype == "cgroup" && opts.split(',').any(|o| o == "memory"))
        {
            return Some(MemoryCgroup { dir, version: Version::V1 });
        }
    }
    let v2 = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = mounted_dir(mountinfo, v2, |fstype, _| fstype == "cgroup2")?;
    Some(MemoryCgroup { dir, version: Version::V2 })
}

/// Where cgroup `path` is visible, given the mounts of that hierarchy.
fn mounted_dir(mountinfo: &str, path: &str, wanted: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (root, mount_point) = (*left.get(3)?, *left.get(4)?);
        if !wanted(right.first()?, right.get(2).copied().unwrap_or("")) {
            return None;
        }
        // The mount shows the hierarchy from `root` down (all of it, or a
        // container's own subtree): the cgroup must be under it.
        let relative = if root == "/" { Some(path) } else { path.strip_prefix(root) }?;
        if !(relative.is_empty() || relative.starts_with('/')) {
            return None;
        }
        Some(Path::new(&unescape(mount_point)).join(relative.trim_start_matches('/')))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_is_found_on_v1_hybrid_v2_and_namespaced_hosts() {
        let hybrid_cgroups = "9:name=systemd:/\n4:memory:/batch/job-1\n1:cpu:/\n0::/\n";
        let hybrid_mounts = "\
35 28 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory
36 28 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:15 - cgroup cgroup rw,cpu
40 28 0:35 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw";
        assert_eq!(
            locate(hybrid_cgroups, hybrid_mounts),
            Some(MemoryCgroup { dir: "/sys/fs/cgroup/memory/batch/job-1".into(), version: Version::V1 })
        );
        // v2 only, as in a Kubernetes pod with a cgroup namespace.
        let v2_mounts = "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw";
        assert_eq!(
            locate("0::/\n", v2_mounts),
            Some(MemoryCgroup { dir: "/sys/fs/cgroup".into(), version: Version::V2 })
        );
        // A container without a cgroup namespace: the mount shows only its own subtree.
        let subtree = "50 40 0:30 /kubepods/pod-x/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory";
        assert_eq!(
            locate("4:memory:/kubepods/pod-x/abc\n", subtree),
            Some(MemoryCgroup { dir: "/sys/fs/cgroup/memory".into(), version: Version::V1 })
        );
        // Co-mounted controllers, and an escaped mount point.
        let comounted = r"60 50 0:40 / /cg\040mem ro - cgroup cgroup rw,memory,hugetlb";
        assert_eq!(
            locate("5:hugetlb,memory:/x\n", comounted),
            Some(MemoryCgroup { dir: "/cg mem/x".into(), version: Version::V1 })
        );
        assert_eq!(locate("1:cpu:/\n", hybrid_mounts), None, "no memory controller anywhere");
    }

    #[test]
    fn an_operator_may_name_the_file_or_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill 0\n").unwrap();
        let from_dir = MemoryCgroup::from_path(dir.path()).unwrap();
        assert_eq!(from_dir.version, Version::V1);
        let file = dir.path().join("memory.events");
        assert_eq!(MemoryCgroup::from_path(&file).unwrap().version, Version::V2);
        assert_eq!(MemoryCgroup::from_path(&dir.path().join("memory.stat")), None);
    }
}
