//! `batch wait --report`: look at a job (each child of an array job) every
//! `--poll` until every one is over, and post a `task_error` for each that
//! failed where its worker could not report (see [`super::unreported`]).
//! A job stuck RUNNABLE past `--pending-timeout` is reported, then cancelled,
//! so that it cannot start later and report a second time.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use wove_proto::env as vars;
use wove_proto::Payload;

use super::client::{BatchClient, BatchError};
use super::status::{report, report_with_children, BatchReport, BatchStatus, JobDescription};
use super::unreported::{decide, Decision};
use crate::report::stop::raised;
use crate::report::{JobAttempt, Sender, StopSignal};

/// How failures outside the worker are reported.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// Posts the reports.
    pub sender: Sender,
    /// How long a job may stay RUNNABLE before it is reported `Unschedulable`.
    pub pending_timeout: Duration,
    /// Stops the wait at its next safe point (see [`crate::report::stop`]).
    pub stop: Option<StopSignal>,
}

/// How a reported wait ended.
pub type Reported = crate::report::Reported<BatchReport>;

impl BatchClient {
    /// Wait (at most `timeout`) until the job and every child are over,
    /// reporting each task that failed outside its worker. `payload` is the
    /// one submitted; without it, it is read back from the job's environment.
    pub async fn wait_reporting(
        &self,
        job_id: &str,
        timeout: Duration,
        payload: Option<&Payload>,
        reporting: &Reporting,
    ) -> Result<Reported, BatchError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut sent: BTreeSet<Option<usize>> = BTreeSet::new();
        let mut reported = Vec::new();
        let mut payload = payload.cloned();
        loop {
            let job = self.look(job_id).await?;
            if reporting.stop.as_ref().is_some_and(StopSignal::is_raised) {
                return Ok(Reported { report: report(&job), reported, ended_job: false, stopped: true });
            }
            let children_ids = job.child_ids();
            let children = if children_ids.is_empty() { Vec::new() } else { self.describe(&children_ids).await? };
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let tasks: Vec<(Option<usize>, &JobDescription)> = if children_ids.is_empty() {
                vec![(None, &job)]
            } else {
                children.iter().map(|c| (child_index(c), c)).collect()
            };
            let mut open = false;
            let mut end_job = false;
            for (index, task) in &tasks {
                match decide(task, *index, now_ms, reporting.pending_timeout) {
                    Decision::Open => open = true,
                    Decision::Settled => {}
                    Decision::Report(failure) => {
                        end_job |= failure.kind.ends_the_job();
                        if !sent.insert(*index) {
                            continue;
                        }
                        if payload.is_none() {
                            payload = Some(payload_of(&job)?);
                        }
                        let attempt = JobAttempt {
                            platform: "aws-batch",
                            job: task.job_id.clone(),
                            attempt: (task.attempts.len() + usize::from(task.status == BatchStatus::Runnable))
                                .to_string(),
                            attempt_number: u32::try_from(task.attempts.len()).unwrap_or(u32::MAX).max(1),
                        };
                        if let Some(payload) = &payload {
                            reported.push(reporting.sender.send(payload, &failure, &attempt).await);
                        }
                    }
                }
            }
            let last = if children_ids.is_empty() { report(&job) } else { report_with_children(&job, &children) };
            if end_job && last.status == BatchStatus::Runnable {
                self.cancel(job_id, "wove-submit: reported Unschedulable (still RUNNABLE past --pending-timeout)")
                    .await?;
                return Ok(Reported { report: last, reported, ended_job: true, stopped: false });
            }
            if !open && last.phase.is_final() {
                return Ok(Reported { report: last, reported, ended_job: false, stopped: false });
            }
            if Instant::now() >= deadline {
                return Err(BatchError::WaitTimedOut { after: started.elapsed(), last: Box::new(last) });
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(Instant::now() + self.poll_interval)) => {}
                _ = raised(reporting.stop.as_ref()) => {}
            }
        }
    }
}

fn child_index(child: &JobDescription) -> Option<usize> {
    let own = child.array_properties.as_ref().and_then(|a| a.index).and_then(|i| usize::try_from(i).ok());
    own.or_else(|| child.job_id.rsplit_once(':').and_then(|(_, i)| i.parse().ok()))
}

/// The payload a job carries in its container's environment.
fn payload_of(job: &JobDescription) -> Result<Payload, BatchError> {
    let value = job
        .container
        .iter()
        .flat_map(|c| &c.environment)
        .find(|kv| kv.name.as_deref() == Some(vars::PAYLOAD))
        .and_then(|kv| kv.value.clone())
        .ok_or_else(|| {
            BatchError::Unexpected(format!(
                "job {} carries no {} to read the payload back from",
                job.job_id,
                vars::PAYLOAD
            ))
        })?;
    Payload::from_text(&value).map_err(|source| BatchError::PayloadUnreadable { job_id: job.job_id.clone(), source })
}

#[cfg(test)]
mod tests {
    use super::super::status::{Container, KeyValue};
    use super::*;

    fn carrying(value: &str) -> JobDescription {
        let variable = KeyValue { name: Some(vars::PAYLOAD.into()), value: Some(value.into()) };
        let container = Container { environment: vec![variable], ..Container::default() };
        JobDescription { job_id: "j-1".into(), container: Some(container), ..JobDescription::default() }
    }

    #[test]
    fn a_payload_that_does_not_decode_keeps_why_as_its_source() {
        let err = payload_of(&carrying("%% not a payload %%")).unwrap_err();
        let BatchError::PayloadUnreadable { job_id, source } = &err else { panic!("{err:?}") };
        assert_eq!(job_id, "j-1");
        let chain = crate::error_chain(&err);
        assert!(chain.starts_with("the payload of job j-1 does not decode: "), "{chain}");
        assert!(chain.ends_with(&crate::error_chain(source)), "the cause is printed once, last: {chain}");
    }

    #[test]
    fn a_job_without_a_payload_says_so() {
        let job = JobDescription { job_id: "j-2".into(), ..JobDescription::default() };
        let err = payload_of(&job).unwrap_err();
        assert!(matches!(err, BatchError::Unexpected(ref m) if m.contains("j-2")), "{err:?}");
    }
}
