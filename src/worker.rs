//! One run of the worker: payload in, task run, events out, exit code.

use std::time::Duration;

use wove_proto::{ErrorInfo, ErrorKind, Event, EventKind, Payload, Status};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::exit::Exit;
use crate::redact::redact_url;
use crate::report::{DeliveryError, HttpSink, Reporter, Requests, Sink, SinkError};
use crate::runner::{Context, Finished, Outcome, Registry, TaskEvents, TaskValue, Unresolved};
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

impl Worker {
    /// A worker with these runners.
    pub fn new(config: Config, registry: Registry) -> Self {
        Self { config, registry }
    }

    /// Run the payload to completion and say how it ended. Must run inside a
    /// tokio runtime with I/O and time enabled. Writes the termination message.
    pub async fn run(self) -> Exit {
        let (exit, summary) = self.run_inner().await;
        // Whatever became of it, the exit code still says how the run ended.
        let _ = termination_message::write(self.config.termination_log.as_deref(), &summary);
        exit
    }

    async fn run_inner(&self) -> (Exit, Summary) {
        // Signals and reaping first: they must cover the whole run, delivery included.
        // As the container's init (or its subreaper) every orphan is ours to reap;
        // embedded in a host program, only the children we start.
        let in_charge = self.config.runner.adopt_orphans || std::process::id() == 1;
        let mode = if in_charge { ReapMode::Everything } else { ReapMode::OwnChildren };
        let (signals, reaper) = match (Signals::install(), Reaper::start(mode)) {
            (Ok(s), Ok(r)) => (s, r),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot set up signal handling: {e}");
                return (Exit::Internal, bare_summary(Exit::Internal, Status::Internal, e.to_string()));
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
        let read = crate::payload_source::read(
            &self.config.payload,
            self.config.max_payload_bytes,
            self.config.read_timeout,
            self.config.ca_bundle.as_deref(),
            &signals,
        );
        let payload = match read.await {
            Ok(p) => p,
            Err(e) => {
                let message = error_chain(&e);
                tracing::error!("{message}");
                let (exit, status) = match e {
                    // Nobody to tell: the payload says where to report.
                    crate::payload_source::PayloadReadError::Cancelled(sig) => {
                        (Exit::Signal(sig as i32), Status::Cancelled)
                    }
                    crate::payload_source::PayloadReadError::Fetch(fetch) => (fetch.exit(), fetch.status()),
                    _ => (Exit::BadPayload, Status::BadPayload),
                };
                return (exit, bare_summary(exit, status, message));
            }
        };
        let env = |name: &str| std::env::var(name).ok();
        let index = self.config.index.clone().or_else(|| TaskIndex::from_platform(&env));
        let shared_run_id = payload.run_id.clone();
        let (payload, index) = match task_index::select(payload, index.as_ref()) {
            Ok(selected) => selected,
            Err(e) => {
                // No task of the payload is this process's: there is nobody to report to.
                let message = error_chain(&e);
                tracing::error!("{message}");
                let mut summary = bare_summary(Exit::BadPayload, Status::BadPayload, message);
                summary.run_id = Some(shared_run_id);
                return (Exit::BadPayload, summary);
            }
        };
        tracing::info!(
            run_id = %payload.run_id, task_id = %payload.task_id, index, runner = payload.runner_name(),
            callback = %redact_url(&payload.callback_url), "payload decoded"
        );
        let reporter = match self.reporter(&payload, index) {
            Ok(r) => r,
            Err(e) => {
                let (exit, status) = match e {
                    SinkError::Url => (Exit::BadPayload, Status::BadPayload),
                    SinkError::CaBundle(_) => (Exit::BadConfig, Status::BadConfig),
                    SinkError::Client(_) => (Exit::Internal, Status::Internal),
                };
                let message = match e {
                    SinkError::Url => "payload field `callback_url`: not a valid URL".to_string(),
                    other => other.to_string(),
                };
                tracing::error!("{message}");
                return (exit, bare_summary(exit, status, message));
            }
        };
        if !reporter.is_signing() {
            tracing::warn!("no signing secret configured: events are sent unsigned (set WOVE_WORKER_SIGNING_SECRET)");
        }

        let settings = std::sync::Arc::new(self.config.runner.clone());
        let prepared = match payload.check_task().map(|()| self.registry.resolve(&payload, &settings.runner_path)) {
            Ok(Ok(runner)) => {
                runner.prepare(&payload, &settings).map_err(|e| (ErrorKind::InvalidPayload, e.to_string()))
            }
            // A many-task entry with nothing to run fails here, as its own task.
            Err(e) | Ok(Err(Unresolved::Payload(e))) => Err((ErrorKind::InvalidPayload, e.to_string())),
            Ok(Err(Unresolved::Unknown(message))) => Err((ErrorKind::UnknownRunner, message)),
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err((kind, message)) => {
                tracing::error!("{message}");
                // The weave is waiting for this task: tell it why it will not run.
                let mut event = reporter.event(EventKind::TaskError);
                event.error = Some(scrubbed(ErrorInfo::of(kind, message.clone())));
                let delivered = self.deliver_final(&reporter, &event, &signals).await;
                // Delivered or not, the payload is at fault: the exit code says so.
                let mut summary =
                    event_summary(Exit::BadPayload, Status::BadPayload, &payload, index, &event, &delivered);
                summary.message = Some(message);
                return (Exit::BadPayload, summary);
            }
        };

        let started = {
            let reporter = reporter.clone();
            let deadline =
                Deadline::after(self.config.delivery.started_budget).or_shutdown(&signals, self.config.shutdown_budget);
            tokio::spawn(async move {
                let event = reporter.event(EventKind::TaskStarted);
                let _ = reporter.send(&event, &deadline).await;
            })
        };
        let heartbeats =
            self.heartbeat_interval(&payload).map(|every| tokio::spawn(heartbeat(reporter.clone(), every)));

        let (events, progress) = TaskEvents::channel();
        let progress = tokio::spawn(report_progress(reporter.clone(), progress));
        let ctx = Context {
            settings,
            reaper,
            signals: signals.clone(),
            cancel_grace: self.config.cancel_grace(),
            ca_bundle: self.config.ca_bundle.clone(),
            events,
        };
        let finished = match signals.cancelled() {
            // Told to stop before the task began: do not begin it.
            Some(sig) => Outcome::Cancelled(Some(sig)).into(),
            // A panic inside a runner must not cost the final event.
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

        let (mut event, mut exit, mut status) =
            final_event(&reporter, finished, self.config.runner.limits.result_bytes);
        let mut delivered = self.deliver_final(&reporter, &event, &signals).await;
        if matches!(delivered, Err(DeliveryError::Rejected { status: 413, .. })) && event.kind == EventKind::TaskResult
        {
            // Too large for this receiver: the weave still learns the task's fate.
            let size = event.result_len();
            tracing::warn!(kind = %ErrorKind::ResultTooLarge, size, "the receiver refused the result as too large (HTTP 413); reporting that instead");
            let mut error = reporter.event(EventKind::TaskError);
            error.error = Some(ErrorInfo::of(
                ErrorKind::ResultTooLarge,
                format!("the receiver refused the task's result ({size} bytes) as too large (HTTP 413)"),
            ));
            error.output = event.output;
            (event, exit, status) = (error, Exit::TaskFailed, Status::Failed);
            delivered = self.deliver_final(&reporter, &event, &signals).await;
        }
        let exit = match &delivered {
            Ok(()) => exit,
            Err(DeliveryError::Rejected { .. }) => Exit::Rejected,
            Err(DeliveryError::Exhausted { .. }) => Exit::Undeliverable,
            Err(DeliveryError::Untrusted { .. } | DeliveryError::NotTls { .. }) => Exit::BadConfig,
        };
        let status = if delivered.is_ok() { status } else { Status::Undelivered };
        (exit, event_summary(exit, status, &payload, index, &event, &delivered))
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

fn final_event(reporter: &Reporter, finished: Finished, max_result_bytes: usize) -> (Event, Exit, Status) {
    let (mut event, exit, status) = match finished.outcome {
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
                _ => (event, Exit::Success, Status::Succeeded),
            }
        }
        Outcome::Failed { error, exception_pickle } => failed_event(reporter, error, exception_pickle),
        // Cancelled by a signal: the signal's code, retryable. A task that
        // cancelled itself (Python's CancelledError) ended on its own, and
        // running it again would do the same: exit 3, status `failed`.
        Outcome::Cancelled(Some(signal)) => {
            (reporter.event(EventKind::TaskCancelled), Exit::Signal(signal as i32), Status::Cancelled)
        }
        Outcome::Cancelled(None) => (reporter.event(EventKind::TaskCancelled), Exit::TaskFailed, Status::Failed),
    };
    event.output = finished.output;
    (event, exit, status)
}

fn failed_event(reporter: &Reporter, error: ErrorInfo, exception_pickle: Option<String>) -> (Event, Exit, Status) {
    let error = scrubbed(error);
    tracing::warn!(kind = %error.kind, message = %error.message, "task failed");
    let mut event = reporter.event(EventKind::TaskError);
    event.error = Some(error);
    event.exception_pickle = exception_pickle;
    (event, Exit::TaskFailed, Status::Failed)
}

/// An error as it may be sent and logged: nothing the worker knows to be
/// secret in its message or traceback (a task's stderr, a field it quotes).
fn scrubbed(mut error: ErrorInfo) -> ErrorInfo {
    error.message = crate::redact::scrub(&error.message).into_owned();
    error.traceback = crate::redact::scrub(&error.traceback).into_owned();
    error
}

fn event_summary(
    exit: Exit,
    status: Status,
    payload: &Payload,
    index: Option<usize>,
    event: &Event,
    delivered: &Result<(), DeliveryError>,
) -> Summary {
    Summary {
        status,
        exit_code: exit.code(),
        run_id: Some(payload.run_id.clone()),
        task_id: Some(payload.task_id.clone()),
        index,
        event: Some(event.kind.as_str()),
        event_id: Some(event.event_id.clone()),
        delivered: delivered.is_ok(),
        error_kind: event.error.as_ref().map(|e| e.kind.clone()),
        message: match delivered {
            Err(e) => Some(e.to_string()),
            Ok(()) => event.error.as_ref().map(|e| e.message.clone()),
        },
    }
}

fn bare_summary(exit: Exit, status: Status, message: String) -> Summary {
    Summary {
        status,
        exit_code: exit.code(),
        run_id: None,
        task_id: None,
        index: None,
        event: None,
        event_id: None,
        delivered: false,
        error_kind: None,
        message: Some(message),
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
