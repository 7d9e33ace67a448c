//! How each index of a many-task job stands: the tasks of an Indexed Job or
//! the children of an array job, one report each, read without I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::Phase;

/// One index: one task of a many-task payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexReport {
    /// The index (`JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX`).
    pub index: usize,
    /// Where it stands.
    pub phase: Phase,
    /// The task's id, once its worker said (Kubernetes: the termination message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Attempts made so far (pods, or Batch attempts).
    pub attempts: usize,
    /// The worker's exit code in the latest attempt that ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What that code means in the worker's contract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_meaning: Option<String>,
    /// The platform's reason, when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl IndexReport {
    /// An index nothing is known about yet.
    pub fn pending(index: usize) -> Self {
        Self {
            index,
            phase: Phase::Pending,
            task_id: None,
            attempts: 0,
            exit_code: None,
            exit_meaning: None,
            reason: None,
        }
    }
}

/// How many indexes stand where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IndexCounts {
    /// Not started, or waiting for a retry.
    pub pending: usize,
    /// Running now.
    pub running: usize,
    /// Done.
    pub succeeded: usize,
    /// Failed for good.
    pub failed: usize,
}

impl IndexCounts {
    /// Count the reports.
    pub fn of(reports: &[IndexReport]) -> Self {
        let mut counts = Self::default();
        for r in reports {
            match r.phase {
                Phase::Pending => counts.pending += 1,
                Phase::Running => counts.running += 1,
                Phase::Succeeded => counts.succeeded += 1,
                Phase::Failed => counts.failed += 1,
            }
        }
        counts
    }
}

/// Read Kubernetes' index ranges (`"0-2,4,7-9"`), ignoring what is not one.
pub fn parse_ranges(text: &str) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bounds = match part.split_once('-') {
            Some((a, b)) => a.parse::<usize>().ok().zip(b.parse::<usize>().ok()),
            None => part.parse::<usize>().ok().map(|n| (n, n)),
        };
        if let Some((first, last)) = bounds {
            set.extend(first..=last);
        }
    }
    set
}

/// Write a set of indexes as ranges, the way Kubernetes does.
pub fn format_ranges(indexes: impl IntoIterator<Item = usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for i in indexes {
        run = match run {
            Some((first, last)) if i == last + 1 => Some((first, i)),
            Some(done) => {
                out.push(range_text(done));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    out.extend(run.map(range_text));
    out.join(",")
}

fn range_text((first, last): (usize, usize)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_and_write_as_kubernetes_spells_them() {
        let set = parse_ranges("0-2,4, 7-9");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 7, 8, 9]);
        assert_eq!(format_ranges(set), "0-2,4,7-9");
        assert!(parse_ranges("").is_empty());
        assert_eq!(parse_ranges("x,3").into_iter().collect::<Vec<_>>(), [3]);
        assert_eq!(format_ranges([5]), "5");
        assert_eq!(format_ranges([]), "");
    }

    #[test]
    fn counts_add_up() {
        let mut reports: Vec<_> = (0..5).map(IndexReport::pending).collect();
        reports[1].phase = Phase::Succeeded;
        reports[2].phase = Phase::Failed;
        reports[3].phase = Phase::Running;
        assert_eq!(IndexCounts::of(&reports), IndexCounts { pending: 2, running: 1, succeeded: 1, failed: 1 });
    }
}
