//! What the commands print: manifests for kubectl, and results as text for
//! people or JSON for programs. Results go to stdout, except with
//! `submit --wait --logs`, where stdout is the worker's log and the results go
//! to stderr.

use clap::ValueEnum;
use wove_submit::batch::reporting::Reported as BatchReported;
use wove_submit::batch::{BatchReport, CancelOutcome, SubmittedJob};
use wove_submit::indexes::{IndexCounts, IndexReport};
use wove_submit::kubernetes::{Cancelled, JobReport, Manifest, Reported, Submitted};
use wove_submit::report::ReportOutcome;

use super::kubernetes::render_typed;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// Where results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error, when stdout carries a pod's log.
    Stderr,
}

impl Stream {
    fn write(self, text: &str) {
        match self {
            Self::Stdout => print!("{text}"),
            Self::Stderr => eprint!("{text}"),
        }
    }
}

/// How a manifest is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// YAML documents (the Secret first, then the Job), as kubectl reads them.
    Yaml,
    /// One JSON document: the Job, or a List with the Secret and the Job.
    Json,
}

/// Print a manifest for `kubectl apply -f -`.
pub fn print_manifest(manifest: &Manifest, format: RenderFormat) -> Result<(), String> {
    let text = match format {
        RenderFormat::Json => pretty(&manifest.to_json()),
        RenderFormat::Yaml => {
            let docs = render_typed(manifest);
            let docs: Vec<Plain<'_>> = docs.iter().map(Plain).collect();
            serde_saphyr::to_string_multiple(&docs).map_err(|e| format!("cannot write YAML: {e}"))?
        }
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    if manifest.payload_secret.is_some() {
        eprintln!(
            "wove-submit: the payload travels in Secret {}; `kubectl apply` cannot make the Job its owner, \
             so delete it with the Job (or use `wove-submit kubernetes submit`, which does)",
            manifest.payload_secret.as_ref().and_then(|s| s.metadata.name.as_deref()).unwrap_or_default()
        );
    }
    Ok(())
}

/// A JSON value as any serializer but serde_json's own must see it. Numbers
/// keep their text in this build (serde_json's `arbitrary_precision`), and
/// such a number serializes as a private structure that only serde_json's
/// writer turns back into a number: a YAML writer would print the structure.
struct Plain<'a>(&'a serde_json::Value);

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => s.serialize_u64(u),
                (None, Some(i), _) => s.serialize_i64(i),
                // A manifest's numbers are counts and seconds; a float is the nearest YAML has.
                (None, None, Some(f)) => s.serialize_f64(f),
                (None, None, None) => s.serialize_str(&n.to_string()),
            },
            Value::String(text) => s.serialize_str(text),
            Value::Array(items) => s.collect_seq(items.iter().map(Plain)),
            Value::Object(map) => s.collect_map(map.iter().map(|(k, v)| (k, Plain(v)))),
        }
    }
}

/// Print what a submit did.
pub fn print_submitted(manifest: &Manifest, submitted: &Submitted, format: Output, more_follows: bool, to: Stream) {
    let name = manifest.name();
    let namespace = manifest.namespace();
    let secret = manifest.payload_secret.as_ref().and_then(|s| s.metadata.name.clone());
    match format {
        // With --wait the report that follows is the one JSON document.
        Output::Json if more_follows => {}
        Output::Json => to.write(&format!(
            "{}\n",
            pretty(&serde_json::json!({
                "name": name,
                "namespace": namespace,
                "uid": submitted.job.metadata.uid,
                "created": submitted.created,
                "payload_secret": secret,
            }))
        )),
        Output::Text => {
            let verb = if submitted.created { "created" } else { "already submitted with this payload" };
            let carried = match &secret {
                Some(secret) => format!(", payload in Secret {secret}"),
                None => String::new(),
            };
            to.write(&format!("job/{name} {verb} in namespace {namespace}{carried}\n"));
        }
    }
}

/// Print a Job's state.
pub fn print_report(report: &JobReport, format: Output, to: Stream) {
    match format {
        Output::Json => to.write(&format!("{}\n", pretty(&serde_json::to_value(report).unwrap_or_default()))),
        Output::Text => to.write(&report_text(report)),
    }
}

/// Print how a reported wait ended: the Job, then each report.
pub fn print_reported(reported: &Reported, format: Output, to: Stream) {
    match format {
        Output::Json => to.write(&format!("{}\n", pretty(&serde_json::to_value(reported).unwrap_or_default()))),
        Output::Text => {
            let mut text = report_text(&reported.report);
            text.push_str(&reports_text(&reported.reported, reported.ended_job, "the Job was deleted"));
            to.write(&text);
        }
    }
}

/// Print how a reported Batch wait ended: the job, then each report.
pub fn print_batch_reported(reported: &BatchReported, format: Output) {
    match format {
        Output::Json => println!("{}", pretty(&serde_json::to_value(reported).unwrap_or_default())),
        Output::Text => {
            print_batch_report(&reported.report, format, Stream::Stdout);
            print!("{}", reports_text(&reported.reported, reported.ended_job, "the job was cancelled"));
        }
    }
}

fn reports_text(reports: &[ReportOutcome], ended_job: bool, ending: &str) -> String {
    let mut text = String::new();
    for r in reports {
        let task = r.failure.index.map(|i| format!("task {i}: ")).unwrap_or_default();
        let fate = match &r.error {
            None => format!("delivered as {} after {} attempt(s)", r.event_id, r.attempts),
            Some(e) => format!("NOT delivered: {e}"),
        };
        let (kind, reason, message) = (r.failure.kind, &r.failure.reason, &r.failure.message);
        text.push_str(&format!("reported {task}{kind} ({reason}): {message}\n  {fate}\n"));
    }
    if ended_job {
        text.push_str(&format!("{ending}: a task that can never run must not start later\n"));
    }
    text
}

/// Print what a cancel did.
pub fn print_cancelled(namespace: &str, name: &str, result: Cancelled, format: Output) {
    match format {
        Output::Json => {
            println!("{}", pretty(&serde_json::json!({"name": name, "namespace": namespace, "result": result})))
        }
        Output::Text => match result {
            Cancelled::Deleted => {
                println!("job/{name} deleted in namespace {namespace}: its pods get SIGTERM and their grace period")
            }
            Cancelled::NotFound => println!("job/{name} not found in namespace {namespace}: nothing to cancel"),
        },
    }
}

/// Print what a Batch submit did.
pub fn print_batch_submitted(submitted: &SubmittedJob, format: Output, more_follows: bool) {
    match format {
        // With --wait the report that follows is the one JSON document.
        Output::Json if more_follows => {}
        Output::Json => println!("{}", pretty(&serde_json::to_value(submitted).unwrap_or_default())),
        Output::Text => {
            let verb = if submitted.created { "submitted" } else { "already submitted with this payload" };
            println!("job {} ({}) {verb}", submitted.job_id, submitted.job_name);
        }
    }
}

/// Print a Batch job's state.
pub fn print_batch_report(report: &BatchReport, format: Output, to: Stream) {
    match format {
        Output::Json => to.write(&format!("{}\n", pretty(&serde_json::to_value(report).unwrap_or_default()))),
        Output::Text => {
            let mut out = format!(
                "job {} ({}): {} [{}]",
                report.job_id,
                report.job_name,
                phase_word(report.phase),
                report.status
            );
            if let Some(reason) = &report.reason {
                out.push_str(&format!(" ({reason})"));
            }
            out.push('\n');
            if let (Some(code), Some(meaning)) = (report.exit_code, &report.exit_meaning) {
                out.push_str(&exit_line(code, meaning));
            }
            for (i, a) in report.attempts.iter().enumerate() {
                out.push_str(&format!("  attempt {}:", i + 1));
                if let Some(code) = a.exit_code {
                    out.push_str(&format!(" exit {code}"));
                }
                if let Some(reason) = a.reason.as_ref().or(a.status_reason.as_ref()) {
                    out.push_str(&format!(" ({reason})"));
                }
                if let Some(log) = &a.log_stream_name {
                    out.push_str(&format!(", log {log}"));
                }
                out.push('\n');
            }
            if let Some(array) = &report.array {
                let by_status: Vec<String> = array.status_summary.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out.push_str(&format!("  array of {}: {}\n", array.size.unwrap_or(0), by_status.join(", ")));
            }
            if let Some(counts) = &report.index_counts {
                out.push_str(&indexes_text(counts, &report.indexes));
            }
            to.write(&out);
        }
    }
}

/// Print what a Batch cancel did.
pub fn print_batch_cancelled(job_id: &str, outcome: &CancelOutcome, format: Output) {
    match format {
        Output::Json => println!("{}", pretty(&serde_json::json!({"job_id": job_id, "result": outcome}))),
        Output::Text => match outcome {
            CancelOutcome::Terminated => println!("job {job_id} terminated: SIGTERM now, SIGKILL 30 s later"),
            CancelOutcome::Cancelled => println!("job {job_id} cancelled before it started"),
            CancelOutcome::AlreadyFinished(status) => println!("job {job_id} had already ended: {status}"),
        },
    }
}

fn phase_word(phase: wove_submit::Phase) -> String {
    serde_json::to_value(phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The line naming how the deciding container exited: the worker's meaning
/// of its own codes, or plainly that the job failed with a code it never uses.
fn exit_line(code: i32, meaning: &str) -> String {
    if wove_proto::Exit::from_code(code).is_some() {
        format!("  worker exit code {code}: {meaning}\n")
    } else {
        format!(
            "  the job failed: its container exited {code}, a code wove-worker never uses \
             (a wrong --command, or an image whose entrypoint is not the worker?)\n"
        )
    }
}

fn report_text(r: &JobReport) -> String {
    let phase = phase_word(r.phase);
    let mut out = format!("job/{} in namespace {}: {phase}", r.name, r.namespace);
    if let Some(reason) = &r.reason {
        out.push_str(&format!(" ({reason})"));
    }
    out.push('\n');
    if let Some(message) = &r.message {
        out.push_str(&format!("  {message}\n"));
    }
    if let (Some(code), Some(meaning)) = (r.exit_code, &r.exit_meaning) {
        out.push_str(&exit_line(code, meaning));
    }
    out.push_str(&format!("  pods: {} active, {} succeeded, {} failed\n", r.active, r.succeeded, r.failed));
    if let Some(counts) = &r.index_counts {
        // One line per task, not per pod: an Indexed Job may have thousands.
        out.push_str(&indexes_text(counts, &r.indexes));
        return out;
    }
    for pod in &r.pods {
        out.push_str(&format!("  pod {}: {}", pod.name, pod.phase));
        if let Some(code) = pod.exit_code {
            out.push_str(&format!(", exit {code}"));
        }
        if let Some(reason) = &pod.reason {
            out.push_str(&format!(", {reason}"));
        }
        if let Some(summary) = pod.termination_message.as_ref().and_then(|t| t.get("message")).and_then(|m| m.as_str())
        {
            out.push_str(&format!(": {summary}"));
        }
        out.push('\n');
    }
    out
}

/// Most failed tasks listed one by one in text output (JSON has them all).
const FAILED_LISTED: usize = 20;

fn indexes_text(counts: &IndexCounts, indexes: &[IndexReport]) -> String {
    let mut out = format!(
        "  tasks: {} succeeded, {} failed, {} running, {} pending\n",
        counts.succeeded, counts.failed, counts.running, counts.pending
    );
    let failed: Vec<&IndexReport> = indexes.iter().filter(|i| i.phase == wove_submit::Phase::Failed).collect();
    for index in failed.iter().take(FAILED_LISTED) {
        out.push_str(&format!("  task {}", index.index));
        if let Some(task_id) = &index.task_id {
            out.push_str(&format!(" ({task_id})"));
        }
        out.push_str(" failed");
        match (index.exit_code, &index.exit_meaning) {
            (Some(code), Some(meaning)) => out.push_str(&format!(", exit {code}: {meaning}")),
            _ => {
                if let Some(reason) = &index.reason {
                    out.push_str(&format!(": {reason}"));
                }
            }
        }
        out.push('\n');
    }
    if failed.len() > FAILED_LISTED {
        out.push_str(&format!(
            "  … and {} more failed (--output json lists every task)\n",
            failed.len() - FAILED_LISTED
        ));
    }
    out
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
