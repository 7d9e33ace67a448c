//! One run of the worker: payload in, task run, events out, exit code.

use std::time::Duration;

use tokio::time::Instant;
use wove_proto::{ErrorInfo, Event, EventKind, Payload};

use crate::config::Config;
use crate::exit::Exit;
use crate::logging::chain;
use crate::redact::redact_url;
use crate::report::{DeliveryError, HttpSink, Reporter, Signer, Sink, SinkError};
use crate::runner::{Context, Outcome, Registry, TaskValue};
use crate::signals::Signals;
use crate::supervise::Reaper;

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
    /// tokio runtime with I/O and time enabled.
    pub async fn run(self) -> Exit {
        let payload = match crate::payload_source::read(&self.config.payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{}", chain(&e));
                return Exit::BadPayload;
            }
        };
        tracing::info!(
            run_id = %payload.run_id, task_id = %payload.task_id, runner = payload.runner_name(),
            callback = %redact_url(&payload.callback_url), "payload decoded"
        );
        let reporter = match self.reporter(&payload) {
            Ok(r) => r,
            Err(SinkError::Url) => {
                tracing::error!("payload field `callback_url`: not a valid URL");
                return Exit::BadPayload;
            }
            Err(e) => {
                tracing::error!("{e}");
                return Exit::Internal;
            }
        };
        if !reporter.is_signing() {
            tracing::warn!("no signing secret configured: events are sent unsigned (set WOVE_WORKER_SIGNING_SECRET)");
        }

        let settings = std::sync::Arc::new(self.config.runner.clone());
        let prepared = match self.registry.resolve(&payload).and_then(|r| r.prepare(&payload, &settings)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                // The weave is waiting for this task: tell it why it will not run.
                let mut event = reporter.event(EventKind::TaskError);
                event.error = Some(ErrorInfo::worker("InvalidPayload", e.to_string()));
                // Delivered or not, the payload is at fault: the exit code says so.
                let _ = self.deliver_final(&reporter, &event).await;
                return Exit::BadPayload;
            }
        };

        let (signals, reaper) = match (Signals::install(), Reaper::start()) {
            (Ok(s), Ok(r)) => (s, r),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot set up signal handling: {e}");
                return Exit::Internal;
            }
        };

        let started = {
            let reporter = reporter.clone();
            let deadline = Instant::now() + self.config.delivery.started_budget;
            tokio::spawn(async move {
                let event = reporter.event(EventKind::TaskStarted);
                let _ = reporter.send(&event, deadline).await;
            })
        };
        let heartbeats =
            self.heartbeat_interval(&payload).map(|every| tokio::spawn(heartbeat(reporter.clone(), every)));

        let ctx = Context { settings, reaper, signals };
        // A panic inside a runner must not cost the final event.
        let outcome = tokio::spawn(prepared.run(ctx))
            .await
            .unwrap_or_else(|e| Outcome::failed(ErrorInfo::worker("WorkerPanic", format!("the runner panicked: {e}"))));

        if let Some(h) = heartbeats {
            h.abort();
        }
        // The final event supersedes a task_started still retrying.
        started.abort();

        let (event, exit) = final_event(&reporter, outcome);
        match self.deliver_final(&reporter, &event).await {
            Ok(()) => exit,
            Err(DeliveryError::Rejected { .. }) => Exit::Rejected,
            Err(DeliveryError::Exhausted { .. }) => Exit::Undeliverable,
        }
    }

    fn reporter(&self, payload: &Payload) -> Result<Reporter, SinkError> {
        let sink = if self.config.print_events {
            Sink::Print {
                redacted_url: redact_url(&payload.callback_url),
                target: wove_proto::sign::wove_v1::target_of(&payload.callback_url),
            }
        } else {
            Sink::Http(HttpSink::new(&payload.callback_url, &self.config.delivery)?)
        };
        let env = |name: &str| std::env::var(name).ok();
        Ok(Reporter::new(payload, sink, Signer::new(&self.config.signing), &env))
    }

    fn heartbeat_interval(&self, payload: &Payload) -> Option<Duration> {
        let every = self
            .config
            .delivery
            .heartbeat_interval
            .or_else(|| payload.delivery.delivery_heartbeat_seconds.map(|s| Duration::from_secs_f64(s / 3.0)))?;
        Some(every.max(MIN_HEARTBEAT))
    }

    async fn deliver_final(&self, reporter: &Reporter, event: &Event) -> Result<(), DeliveryError> {
        let deadline = Instant::now() + self.config.delivery.budget;
        reporter.send(event, deadline).await.map(|_| ()).inspect_err(|e| {
            tracing::error!(
                event = event.kind.as_str(), event_id = %event.event_id,
                "FINAL EVENT NOT DELIVERED: the weave will not learn this task's outcome: {e}"
            );
        })
    }
}

async fn heartbeat(reporter: Reporter, every: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let event = reporter.event(EventKind::Heartbeat);
        // A heartbeat older than the next one is worthless: give it one period.
        let _ = reporter.send(&event, Instant::now() + every).await;
    }
}

fn final_event(reporter: &Reporter, outcome: Outcome) -> (Event, Exit) {
    match outcome {
        Outcome::Succeeded(value) => {
            let mut event = reporter.event(EventKind::TaskResult);
            match value {
                TaskValue::Json(v) => event.result = Some(v),
                TaskValue::Pickle(p) => event.result_pickle = Some(p),
            }
            (event, Exit::Success)
        }
        Outcome::Failed { error, exception_pickle } => {
            tracing::warn!(kind = %error.kind, message = %error.message, "task failed");
            let mut event = reporter.event(EventKind::TaskError);
            event.error = Some(error);
            event.exception_pickle = exception_pickle;
            (event, Exit::TaskFailed)
        }
        Outcome::Cancelled(signal) => {
            let exit = signal.map_or(Exit::TaskFailed, |s| Exit::Signal(s as i32));
            (reporter.event(EventKind::TaskCancelled), exit)
        }
    }
}
