//! One run of the worker: payload in, task run, events out, exit code.
//!
//! A run goes through five stages, each a method here, and any of them may end it with its
//! [`Verdict`] and the termination message's summary:
//! 1. `Worker::set_up`: signal handling and reaping, before anything can start;
//! 2. `Worker::decode`: the payload read and decoded, this process's task picked;
//! 3. `Worker::prepare`: where events go, and the task checked by its runner; a task refused
//!    here is reported to the weave as a `task_error` (exit 65);
//! 4. `Worker::execute`: the task, with `task_started`, heartbeats and progress beside it;
//! 5. `Worker::finish`: the final event delivered within its budget, and the verdict.

use std::time::Duration;

use wove_proto::{ErrorInfo, ErrorKind, Event, EventKind, Payload, Status};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::exit::{Exit, Verdict};
use crate::payload_source::PayloadReadError;
use crate::redact::redact_url;
use crate::report::{ClientError, DeliveryError, HttpSink, Reporter, Requests, Sink, SinkError};
use crate::runner::{Context, Finished, Outcome, Prepared, Registry, TaskEvents, TaskValue};
use crate::signals::Signals;
use crate::supervise::{ReapMode, Reaper};
use crate::task_index::{self, TaskIndex};
use crate::termination_message::{self, Summary};
use wove_proto::error_chain;

/// Shortest heartbeat period, whatever the payload asks for.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// The worker: a configuration and the runners it may use.
#[derive(Debug)]
pub struct Worker {
    config: Config,
    registry: Registry,
}

/// How a run ended: its verdict, and what the termination message says of it.
#[derive(Debug)]
struct Ended {
    verdict: Verdict,
    summary: Summary,
}

/// A stage's result: what the next stage needs, or the end of the run (boxed: a summary is large).
type Stage<T> = Result<T, Box<Ended>>;

/// What covers the whole run, delivery included.
struct SetUp {
    signals: Signals,
    reaper: Reaper,
}

/// This process's task: the payload (a many-task payload's entry) and its index.
struct Decoded {
    payload: Payload,
    index: Option<usize>,
}

impl Worker {
    /// A worker with these runners.
    pub fn new(config: Config, registry: Registry) -> Self {
        Self { config, registry }
    }

    /// Run the payload to completion and say how it ended. Must run inside a
    /// tokio runtime with I/O and time enabled. Writes the termination message.
    pub async fn run(self) -> Exit {
        let ended = match self.stages().await {
            Ok(ended) => ended,
            Err(early) => *early,
        };
        // Whatever became of it, the exit code still says how the run ended.
        let _ = termination_message::write(self.config.termination_log.as_deref(), &ended.summary);
        ended.verdict.exit
    }

    async fn stages(&self) -> Stage<Ended> {
        let SetUp { signals, reaper } = self.set_up()?;
        let task = self.decode(&signals).await?;
        let (reporter, prepared) = self.prepare(&task, &signals).await?;
        let finished = self.execute(prepared, &reporter, signals.clone(), reaper, &task.payload).await;
        Ok(self.finish(&reporter, finished, &task, &signals).await)
    }

    /// Signals and reaping first: they must cover the whole run, delivery included. As the
    /// container's init (or its subreaper) every orphan is ours to reap; embedded in a host
    /// program, only the children we start.
    fn set_up(&self) -> Stage<SetUp> {
        let in_charge = self.config.runner.adopt_orphans || std::process::id() == 1;
        let mode = if in_charge { ReapMode::Everything } else { ReapMode::OwnChildren };
        let (signals, reaper) = match (Signals::install(), Reaper::start(mode)) {
            (Ok(s), Ok(r)) => (s, r),
            (Err(e), _) | (_, Err(e)) => {
                let message = format!("cannot set up signal handling: {e}");
                tracing::error!("{message}");
                return Err(Ended::bare(Verdict::INTERNAL, message));
            }
        };
        if self.config.runner.adopt_orphans {
            become_subreaper();
        }
        for secret in &self.config.signing.secrets {
            // What a library caller configured directly is as secret as what the CLI read.
            if let Ok(text) = std::str::from_utf8(secret.as_bytes()) {
                crate::redact::register(text);
            }
        }
        Ok(SetUp { signals, reaper })
    }

    /// The payload, read and decoded, and this process's task of it. Nobody can be told of a
    /// failure here: only the payload says where to report.
    async fn decode(&self, signals: &Signals) -> Stage<Decoded> {
        let read = crate::payload_source::read(
            &self.config.payload,
            self.config.max_payload_bytes,
            self.config.read_timeout,
            self.config.ca_bundle.as_deref(),
            signals,
        );
        let payload = read.await.map_err(|e| {
            let message = error_chain(&e);
            tracing::error!("{message}");
            let verdict = match e {
                PayloadReadError::Cancelled(sig) => Verdict::cancelled(sig),
                PayloadReadError::Fetch(fetch) => fetch.verdict(),
                _ => Verdict::BAD_PAYLOAD,
            };
            Ended::bare(verdict, message)
        })?;
        let env = |name: &str| std::env::var(name).ok();
        let index = self.config.index.clone().or_else(|| TaskIndex::from_platform(&env));
        let shared_run_id = payload.run_id.clone();
        let (payload, index) = task_index::select(payload, index.as_ref()).map_err(|e| {
            let message = error_chain(&e);
            tracing::error!("{message}");
            let mut ended = Ended::bare(Verdict::BAD_PAYLOAD, message);
            ended.summary.run_id = Some(shared_run_id);
            ended
        })?;
        tracing::info!(
            run_id = %payload.run_id, task_id = %payload.task_id, index, runner = payload.runner_name(),
            callback = %redact_url(&payload.callback_url), "payload decoded"
        );
        Ok(Decoded { payload, index })
    }

    /// Where events go, then the task checked by its runner. From here the weave is waiting:
    /// a task that will not run is reported to it, with why.
    async fn prepare(&self, task: &Decoded, signals: &Signals) -> Stage<(Reporter, Box<dyn Prepared>)> {
        let reporter = self.reporter(&task.payload, task.index).map_err(|e| {
            let verdict = match e {
                SinkError::Url => Verdict::BAD_PAYLOAD,
                SinkError::Setup(ClientError::CaBundle { .. }) => Verdict::BAD_CONFIG,
                SinkError::Setup(ClientError::Tls(_)) | SinkError::Client(_) => Verdict::INTERNAL,
            };
            let message = match e {
                SinkError::Url => "payload field `callback_url`: not a valid URL".to_string(),
                other => error_chain(&other),
            };
            tracing::error!("{message}");
            Ended::bare(verdict, message)
        })?;
        if !reporter.is_signing() {
            tracing::warn!("no signing secret configured: events are sent unsigned (set WOVE_WORKER_SIGNING_SECRET)");
        }
        match self.registry.prepare(&task.payload, &self.config.runner) {
            Ok(prepared) => Ok((reporter, prepared)),
            Err(refused) => {
                let message = error_chain(&refused);
                tracing::error!("{message}");
                let mut event = reporter.event(EventKind::TaskError);
                event.error = Some(scrubbed(ErrorInfo::of(refused.kind(), message.clone())));
                let delivered = self.deliver_final(&reporter, &event, signals).await;
                // Delivered or not, the payload is at fault: the verdict says so.
                let mut ended = Ended::reported(Verdict::BAD_PAYLOAD, task, &event, &delivered);
                ended.summary.message = Some(message);
                Err(Box::new(ended))
            }
        }
    }

    /// Run the task, with `task_started`, heartbeats and progress beside it; they stop when
    /// it ends. A signal before it begins means it never begins; a panic inside a runner
    /// becomes the task's failure, never the loss of its final event.
    async fn execute(
        &self,
        prepared: Box<dyn Prepared>,
        reporter: &Reporter,
        signals: Signals,
        reaper: Reaper,
        payload: &Payload,
    ) -> Finished {
        let started = {
            let reporter = reporter.clone();
            let deadline =
                Deadline::after(self.config.delivery.started_budget).or_shutdown(&signals, self.config.shutdown_budget);
            tokio::spawn(async move {
                let event = reporter.event(EventKind::TaskStarted);
                let _ = reporter.send(&event, &deadline).await;
            })
        };
        let heartbeats = self.heartbeat_interval(payload).map(|every| tokio::spawn(heartbeat(reporter.clone(), every)));
        let (events, progress) = TaskEvents::channel();
        let progress = tokio::spawn(report_progress(reporter.clone(), progress));
        let cancelled = signals.cancelled();
        let ctx = Context {
            settings: std::sync::Arc::new(self.config.runner.clone()),
            reaper,
            signals,
            cancel_grace: self.config.cancel_grace(),
            ca_bundle: self.config.ca_bundle.clone(),
            events,
        };
        let finished = match cancelled {
            Some(sig) => Outcome::Cancelled(Some(sig)).into(),
            None => tokio::spawn(prepared.run(ctx)).await.unwrap_or_else(|e| {
                Outcome::failed(ErrorInfo::of(ErrorKind::WorkerPanic, format!("the runner panicked: {e}"))).into()
            }),
        };
        if let Some(h) = heartbeats {
            h.abort();
        }
        progress.abort();
        // The final event supersedes a task_started still retrying.
        started.abort();
        finished
    }

    /// The final event, delivered within its budget, and the verdict: the task's, unless the
    /// event did not arrive. A result the receiver refuses as too large (413) is followed by a
    /// `task_error` saying so, so that the weave still learns the task's fate.
    async fn finish(&self, reporter: &Reporter, finished: Finished, task: &Decoded, signals: &Signals) -> Ended {
        let (mut event, mut verdict) = final_event(reporter, finished, self.config.runner.limits.result_bytes);
        let mut delivered = self.deliver_final(reporter, &event, signals).await;
        if matches!(delivered, Err(DeliveryError::Rejected { status: 413, .. })) && event.kind == EventKind::TaskResult
        {
            let size = event.result_len();
            tracing::warn!(kind = %ErrorKind::ResultTooLarge, size, "the receiver refused the result as too large (HTTP 413); reporting that instead");
            let mut error = reporter.event(EventKind::TaskError);
            error.error = Some(ErrorInfo::of(
                ErrorKind::ResultTooLarge,
                format!("the receiver refused the task's result ({size} bytes) as too large (HTTP 413)"),
            ));
            error.output = event.output;
            (event, verdict) = (error, Verdict::FAILED);
            delivered = self.deliver_final(reporter, &event, signals).await;
        }
        let verdict = match &delivered {
            Ok(()) => verdict,
            Err(e) => undelivered(e),
        };
        Ended::reported(verdict, task, &event, &delivered)
    }

    fn reporter(&self, payload: &Payload, index: Option<usize>) -> Result<Reporter, SinkError> {
        let sink = if self.config.print_events {
            Sink::Print { redacted_url: redact_url(&payload.callback_url) }
        } else {
            Sink::Http(HttpSink::new(
                &payload.callback_url,
                &self.config.delivery.policy(),
                self.config.ca_bundle.as_deref(),
                crate::report::USER_AGENT,
            )?)
        };
        let env = |name: &str| std::env::var(name).ok();
        let requests = Requests::new(&payload.callback_url, self.config.signing.clone(), crate::report::USER_AGENT);
        Ok(Reporter::new(payload, index, sink, requests, &env))
    }

    fn heartbeat_interval(&self, payload: &Payload) -> Option<Duration> {
        let every = self
            .config
            .delivery
            .heartbeat_interval
            .or_else(|| payload.delivery.delivery_heartbeat_seconds.map(|s| Duration::from_secs_f64(s / 3.0)))?;
        Some(every.max(MIN_HEARTBEAT))
    }

    /// The final event gets the whole delivery budget, or what is left of the
    /// shutdown budget once SIGTERM has arrived.
    async fn deliver_final(&self, reporter: &Reporter, event: &Event, signals: &Signals) -> Result<(), DeliveryError> {
        let deadline = Deadline::after(self.config.delivery.budget).or_shutdown(signals, self.config.shutdown_budget);
        reporter.send(event, &deadline).await.map(|_| ()).inspect_err(|e| {
            tracing::error!(
                event = event.kind.as_str(), event_id = %event.event_id,
                "FINAL EVENT NOT DELIVERED: the weave will not learn this task's outcome: {e}"
            );
        })
    }
}

async fn heartbeat(reporter: Reporter, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let event = reporter.event(EventKind::Heartbeat);
        // A heartbeat older than the next one is worthless: give it one period.
        let _ = reporter.send(&event, &Deadline::after(every)).await;
    }
}

/// Heartbeats a runner asked for (with its progress), one at a time; when
/// they come faster than they can be delivered, the latest wins.
async fn report_progress(
    reporter: Reporter,
    mut updates: tokio::sync::watch::Receiver<(u64, Option<serde_json::Value>)>,
) {
    while updates.changed().await.is_ok() {
        let progress = updates.borrow_and_update().1.clone();
        let mut event = reporter.event(EventKind::Heartbeat);
        event.progress = progress;
        let _ = reporter.send(&event, &Deadline::after(PROGRESS_BUDGET)).await;
    }
}

/// How long one progress heartbeat may take to deliver before the next replaces it.
const PROGRESS_BUDGET: Duration = Duration::from_secs(30);

fn final_event(reporter: &Reporter, finished: Finished, max_result_bytes: usize) -> (Event, Verdict) {
    let (mut event, verdict) = match finished.outcome {
        Outcome::Succeeded(value) => {
            let mut event = reporter.event(EventKind::TaskResult);
            match value {
                TaskValue::Json(v) => event.result = Some(v),
                TaskValue::Pickle(p) => event.result_pickle = Some(p),
            }
            match event.result_len() {
                size if size > max_result_bytes => {
                    failed_event(reporter, crate::runner::result_too_large(size, max_result_bytes), None)
                }
                _ => (event, Verdict::SUCCEEDED),
            }
        }
        Outcome::Failed { error, exception_pickle } => failed_event(reporter, error, exception_pickle),
        // Cancelled by a signal: the signal's code, retryable. A task that
        // cancelled itself (Python's CancelledError) ended on its own, and
        // running it again would do the same: exit 3, status `failed`.
        Outcome::Cancelled(Some(signal)) => (reporter.event(EventKind::TaskCancelled), Verdict::cancelled(signal)),
        Outcome::Cancelled(None) => (reporter.event(EventKind::TaskCancelled), Verdict::FAILED),
    };
    event.output = finished.output;
    (event, verdict)
}

fn failed_event(reporter: &Reporter, error: ErrorInfo, exception_pickle: Option<String>) -> (Event, Verdict) {
    let error = scrubbed(error);
    tracing::warn!(kind = %error.kind, message = %error.message, "task failed");
    let mut event = reporter.event(EventKind::TaskError);
    event.error = Some(error);
    event.exception_pickle = exception_pickle;
    (event, Verdict::FAILED)
}

/// The verdict when the final event did not arrive: the exit code says why, the status that
/// the weave did not hear.
fn undelivered(error: &DeliveryError) -> Verdict {
    let exit = match error {
        DeliveryError::Rejected { .. } => Exit::Rejected,
        DeliveryError::Exhausted { .. } => Exit::Undeliverable,
        DeliveryError::Untrusted { .. } | DeliveryError::NotTls { .. } => Exit::BadConfig,
    };
    Verdict::new(exit, Status::Undelivered)
}

/// An error as it may be sent and logged: nothing the worker knows to be
/// secret in its message or traceback (a task's stderr, a field it quotes).
fn scrubbed(mut error: ErrorInfo) -> ErrorInfo {
    error.message = crate::redact::scrub(&error.message).into_owned();
    error.traceback = crate::redact::scrub(&error.traceback).into_owned();
    error
}

impl Ended {
    /// A run that ended before its task was known to the weave: nothing was reported.
    fn bare(verdict: Verdict, message: String) -> Box<Self> {
        let summary = Summary {
            status: verdict.status,
            exit_code: verdict.exit.code(),
            run_id: None,
            task_id: None,
            index: None,
            event: None,
            event_id: None,
            delivered: false,
            error_kind: None,
            message: Some(message),
        };
        Box::new(Self { verdict, summary })
    }

    /// A run whose final event was `event`, delivered or not.
    fn reported(verdict: Verdict, task: &Decoded, event: &Event, delivered: &Result<(), DeliveryError>) -> Self {
        let summary = Summary {
            status: verdict.status,
            exit_code: verdict.exit.code(),
            run_id: Some(task.payload.run_id.clone()),
            task_id: Some(task.payload.task_id.clone()),
            index: task.index,
            event: Some(event.kind.as_str()),
            event_id: Some(event.event_id.clone()),
            delivered: delivered.is_ok(),
            error_kind: event.error.as_ref().map(|e| e.kind.clone()),
            message: match delivered {
                Err(e) => Some(e.to_string()),
                Ok(()) => event.error.as_ref().map(|e| e.message.clone()),
            },
        };
        Self { verdict, summary }
    }
}

/// Orphans of the task's descendants come to us, so we can reap and kill
/// them, instead of escaping to the host's init. PID 1 has this already.
fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphaned grandchildren may escape");
    }
}
