//! `wove-submit batch render|submit|status|wait|cancel`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use wove_submit::batch::reporting::{Reported, Reporting};
use wove_submit::batch::{self, BatchClient, BatchError, BatchOptions, BatchReport, Dependency};

use super::args::{
    block_on, key_value, read_payload, refused, reported_exit, set, stop_on_stdin_eof, ApiTimeoutArgs,
    CleanupStoreArgs, OutputArgs, PayloadArgs, PayloadSourceArgs, ReportArgs, WaitFlag, WaitingArgs,
};
use super::output::{self, Output, Stream};
use super::overlay::{self, Given};
use super::store::{self, StoreArgs};
use super::{Failure, SubmitExit};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SubmitJob request as JSON, what `aws batch submit-job --cli-input-json`
    /// takes. Needs no AWS access.
    #[command(after_long_help = super::exit::help())]
    Render(Box<RenderArgs>),
    #[command(flatten)]
    Remote(Remote),
}

/// The subcommands that talk to AWS Batch.
#[derive(Debug, Subcommand)]
pub enum Remote {
    /// Submit the job (or find the one a retried submit already made). With
    /// --wait, wait for it and exit with the worker's exit code.
    #[command(after_long_help = super::exit::help())]
    Submit(Box<SubmitArgs>),
    /// How a job stands: its status and reason, each attempt's exit code and its meaning.
    #[command(after_long_help = super::exit::help())]
    Status(IdArgs),
    /// Wait until a job succeeds or fails; exit with the worker's exit code.
    #[command(after_long_help = super::exit::help())]
    Wait(Box<WaitArgs>),
    /// Stop a job: TerminateJob once it has started, CancelJob while it is queued.
    #[command(after_long_help = super::exit::help())]
    Cancel(CancelArgs),
    /// Delete the payload objects of jobs that are over (or gone) from a
    /// payload store, for jobs nobody waited on; objects of jobs still queued
    /// or running are kept.
    #[command(after_long_help = super::exit::help())]
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    job: JobArgs,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    wait: WaitFlag,
    #[command(flatten)]
    waiting: WaitingArgs,
    #[command(flatten)]
    reporting: ReportArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The job's id (as `submit` printed it).
    job_id: String,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    id: IdArgs,
    #[command(flatten)]
    waiting: WaitingArgs,
    #[command(flatten)]
    reporting: ReportArgs,
    /// With --report: the payload the job carries [default: read back from the job].
    #[command(flatten, next_help_heading = "Reporting failures outside the worker")]
    payload: PayloadSourceArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    id: IdArgs,
    /// Why, as AWS Batch records it.
    #[arg(long, env = "WOVE_SUBMIT_CANCEL_REASON", default_value = "Cancelled by wove-submit")]
    reason: String,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    store: CleanupStoreArgs,
    /// The queue the jobs were submitted to.
    #[arg(long, env = "WOVE_SUBMIT_JOB_QUEUE")]
    job_queue: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "AWS")]
struct ConnectArgs {
    /// The Batch endpoint [default: AWS_ENDPOINT_URL_BATCH, then AWS's own].
    #[arg(long, env = "WOVE_SUBMIT_AWS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,
    /// The region [default: AWS_REGION, the profile's, or the instance's].
    #[arg(long, env = "WOVE_SUBMIT_AWS_REGION")]
    region: Option<String>,
    #[command(flatten)]
    api_timeout: ApiTimeoutArgs,
}

/// Job options, laid over those of --options by one rule (cli/overlay.rs).
#[derive(Debug, Args)]
#[command(next_help_heading = "Job")]
struct JobArgs {
    /// Job options as JSON (the library's `BatchOptions`, keys in snake_case).
    #[arg(long = "options", env = "WOVE_SUBMIT_BATCH_OPTIONS", value_name = "FILE")]
    options_file: Option<PathBuf>,
    /// The job queue (required, here or in --options).
    #[arg(long, env = "WOVE_SUBMIT_JOB_QUEUE")]
    job_queue: Option<String>,
    /// The job definition, name[:revision] or ARN (required, here or in --options).
    #[arg(long, env = "WOVE_SUBMIT_JOB_DEFINITION")]
    job_definition: Option<String>,
    /// Start of the job's name [default: wove].
    #[arg(long, env = "WOVE_SUBMIT_NAME_PREFIX")]
    name_prefix: Option<String>,
    /// An environment variable NAME=VALUE (repeat; one per line in the variable).
    #[arg(long, env = "WOVE_SUBMIT_ENV", value_name = "NAME=VALUE", value_delimiter = '\n', value_parser = key_value)]
    env: Vec<(String, String)>,
    /// The container's command, one word per flag [default: the job definition's].
    #[arg(long, env = "WOVE_SUBMIT_COMMAND", value_name = "WORD", allow_hyphen_values = true)]
    command: Vec<String>,
    /// vCPUs, e.g. 1 or 0.25.
    #[arg(long, env = "WOVE_SUBMIT_VCPUS")]
    vcpus: Option<String>,
    /// Memory in MiB.
    #[arg(long, env = "WOVE_SUBMIT_MEMORY_MIB", value_name = "MIB")]
    memory_mib: Option<u64>,
    /// GPUs.
    #[arg(long, env = "WOVE_SUBMIT_GPUS", value_name = "N")]
    gpus: Option<u32>,
    /// A tag KEY=VALUE (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_TAGS", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = key_value)]
    tag: Vec<(String, String)>,
    /// Copy the job's tags to its ECS task.
    #[arg(long, env = "WOVE_SUBMIT_PROPAGATE_TAGS")]
    propagate_tags: bool,
    /// A job definition parameter KEY=VALUE (repeat).
    #[arg(long, env = "WOVE_SUBMIT_PARAMETERS", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = key_value)]
    parameter: Vec<(String, String)>,
    /// A job this one waits for: JOB_ID, or JOB_ID:N_TO_N / JOB_ID:SEQUENTIAL (repeat).
    #[arg(long, env = "WOVE_SUBMIT_DEPENDS_ON", value_name = "JOB_ID[:TYPE]", value_delimiter = ',')]
    depends_on: Vec<Dependency>,
    /// Scheduling priority on a fair-share queue, 0 to 9999.
    #[arg(long, env = "WOVE_SUBMIT_PRIORITY", value_name = "N")]
    priority: Option<i32>,
    /// Fair-share identifier.
    #[arg(long, env = "WOVE_SUBMIT_SHARE_IDENTIFIER")]
    share_identifier: Option<String>,
    /// Attempts in all, 1 to 10 [default: 1].
    #[arg(long, env = "WOVE_SUBMIT_ATTEMPTS", value_name = "N")]
    attempts: Option<i32>,
    /// Seconds one attempt may run, at least 60 (a timed-out job is not retried).
    #[arg(long, env = "WOVE_SUBMIT_ATTEMPT_DURATION", value_name = "SECS")]
    attempt_duration: Option<i64>,
    /// Run an array job of N children (2 to 10000).
    #[arg(long, env = "WOVE_SUBMIT_ARRAY_SIZE", value_name = "N")]
    array_size: Option<i32>,
    /// The payload is already in the container at this path (a volume the job
    /// definition mounts): send its path, not the payload.
    #[arg(long, env = "WOVE_SUBMIT_PAYLOAD_PATH_IN_CONTAINER", value_name = "PATH")]
    payload_path_in_container: Option<String>,
    /// Skip the ECS limit on container overrides (8192 characters): for EKS-backed queues only.
    #[arg(long, env = "WOVE_SUBMIT_NO_ECS_OVERRIDES_LIMIT")]
    no_ecs_overrides_limit: bool,
    /// Any other SubmitJob fields, as a JSON object spelled as the API spells them.
    #[arg(long, env = "WOVE_SUBMIT_EXTRA", value_name = "JSON", value_parser = super::args::json_one::<serde_json::Map<String, serde_json::Value>>)]
    extra: Option<serde_json::Map<String, serde_json::Value>>,
    #[command(flatten)]
    store: StoreArgs,
}

impl JobArgs {
    /// The options file, with every flag that was given laid over it (cli/overlay.rs).
    fn options(&self) -> Result<BatchOptions, Failure> {
        let mut given = Given::default();
        given
            .value("job_queue", self.job_queue.as_ref())
            .value("job_definition", self.job_definition.as_ref())
            .value("name_prefix", self.name_prefix.as_ref())
            .items("environment", &self.env)
            .items("command", &self.command)
            .value("vcpus", self.vcpus.as_ref())
            .value("memory_mib", self.memory_mib)
            .value("gpus", self.gpus)
            .entries("tags", &self.tag)
            .switch("propagate_tags", self.propagate_tags, true)
            .entries("parameters", &self.parameter)
            .items("depends_on", &self.depends_on)
            .value("scheduling_priority", self.priority)
            .value("share_identifier", self.share_identifier.as_ref())
            .value("attempts", self.attempts)
            .value("attempt_duration_seconds", self.attempt_duration)
            .value("array_size", self.array_size)
            .value("payload_file", self.payload_path_in_container.as_ref())
            .switch("ecs_overrides_limit", self.no_ecs_overrides_limit, false)
            .value("extra", self.extra.as_ref());
        let mut options: BatchOptions = overlay::options(self.options_file.as_deref(), given, &["command"])?;
        self.store.apply(&mut options.payload_store)?;
        Ok(options)
    }
}

/// Run one `batch` subcommand.
pub fn run(command: Command) -> Result<SubmitExit, Failure> {
    match command {
        Command::Render(args) => {
            let (plan, _, _) = build(&args.payload, &args.job)?;
            println!("{}", serde_json::to_string_pretty(&plan.request.to_json()).unwrap_or_default());
            if let Some(object) = &plan.upload {
                // Offline: say what `submit` would do, beside the request it would send.
                eprintln!("wove-submit: the payload travels by reference: {}", object.plan());
            }
            Ok(SubmitExit::Success)
        }
        Command::Remote(command) => block_on(remote(command)),
    }
}

async fn remote(command: Remote) -> Result<SubmitExit, Failure> {
    match command {
        Remote::Submit(args) => {
            let (mut plan, payload, ecs_limit) = build(&args.payload, &args.job)?;
            let sender = if args.wait.on { args.reporting.sender()? } else { None };
            let store = match &plan.upload {
                Some(object) => {
                    let store = store::client(args.connect.api_timeout.seconds).await;
                    if let Some(url) = store::upload(&store, object).await? {
                        plan.request.set_payload_url(&url, ecs_limit).map_err(refused)?;
                    }
                    Some(store)
                }
                None => None,
            };
            let client = connect(&args.connect).await.poll_interval(args.waiting.poll);
            let submitted = client.submit(&plan.request).await.map_err(client_failure)?;
            output::print_batch_submitted(&submitted, args.output.format, args.wait.on);
            if !args.wait.on {
                return Ok(SubmitExit::Success);
            }
            let object = plan.request.payload_object().map(str::to_string);
            match sender {
                None => {
                    let outcome = client.wait(&submitted.job_id, args.waiting.timeout).await;
                    if let (Some(store), Ok(report)) = (&store, &outcome) {
                        release_when_over(store, report, object.as_deref()).await;
                    }
                    finish_wait(outcome, args.output.format)
                }
                Some(sender) => {
                    let reporting = reporting(&args.reporting, sender);
                    let outcome = client
                        .wait_reporting(&submitted.job_id, args.waiting.timeout, Some(&payload), &reporting)
                        .await;
                    if let (Some(store), Ok(reported)) = (&store, &outcome) {
                        if reported.stopped {
                            linger_and_release(&client, &reported.report, args.connect.api_timeout.seconds).await;
                        } else {
                            release_when_over(store, &reported.report, object.as_deref()).await;
                        }
                    }
                    finish_reported(outcome, args.output.format)
                }
            }
        }
        Remote::Status(args) => {
            let client = connect(&args.connect).await;
            let report = client.status(&args.job_id).await.map_err(client_failure)?;
            output::print_batch_report(&report, args.output.format, Stream::Stdout);
            Ok(SubmitExit::Success)
        }
        Remote::Wait(args) => {
            let sender = args.reporting.sender()?;
            let client = connect(&args.id.connect).await.poll_interval(args.waiting.poll);
            let Some(sender) = sender else {
                let outcome = client.wait(&args.id.job_id, args.waiting.timeout).await;
                if let Ok(report) = &outcome {
                    release_object_of(report, args.id.connect.api_timeout.seconds).await;
                }
                return finish_wait(outcome, args.id.output.format);
            };
            let payload = if args.payload.is_given() {
                Some(read_payload(&args.payload)?.payload().clone())
            } else {
                // A payload by reference is not in the job to be read back: it is in the store.
                match client.status(&args.id.job_id).await.ok().and_then(|r| r.payload_object) {
                    Some(url) => {
                        let store = store::client(args.id.connect.api_timeout.seconds).await;
                        Some(store::download_payload(&store, &url, None).await?)
                    }
                    None => None,
                }
            };
            let reporting = reporting(&args.reporting, sender);
            let outcome =
                client.wait_reporting(&args.id.job_id, args.waiting.timeout, payload.as_ref(), &reporting).await;
            if let Ok(reported) = &outcome {
                if reported.stopped {
                    linger_and_release(&client, &reported.report, args.id.connect.api_timeout.seconds).await;
                } else {
                    release_object_of(&reported.report, args.id.connect.api_timeout.seconds).await;
                }
            }
            finish_reported(outcome, args.id.output.format)
        }
        Remote::Cancel(args) => {
            let client = connect(&args.id.connect).await;
            // Read before the job is stopped: which object it reads, if any.
            let object = client.status(&args.id.job_id).await.ok().and_then(|r| r.payload_object);
            let outcome = client.cancel(&args.id.job_id, &args.reason).await.map_err(client_failure)?;
            output::print_batch_cancelled(&args.id.job_id, &outcome, args.id.output.format);
            if object.is_some() {
                // Cancelled means no attempt will start again: nothing will read it.
                store::release(&store::client(args.id.connect.api_timeout.seconds).await, object.as_deref()).await;
            }
            Ok(SubmitExit::Success)
        }
        Remote::Cleanup(args) => cleanup(&args).await,
    }
}

/// Delete the job's payload object once the job is over: never after an
/// attempt that Batch will retry, since the job is then still RUNNABLE or RUNNING.
async fn release_when_over(store: &store::StoreClient, report: &BatchReport, object: Option<&str>) {
    if report.phase.is_final() {
        store::release(store, object.or(report.payload_object.as_deref())).await;
    }
}

/// [`release_when_over`] for a job whose object is known only from its tags.
async fn release_object_of(report: &BatchReport, api_timeout: Duration) {
    if report.phase.is_final() && report.payload_object.is_some() {
        release_when_over(&store::client(api_timeout).await, report, None).await;
    }
}

/// How long a watch stopped from outside (`--stop-on-stdin-eof`) still waits
/// for its job to end, to delete the payload object: the weave that stopped it
/// has its result, so the worker is exiting; within the 10 s the Wove snippet
/// gives a watcher to end.
const STOP_LINGER: Duration = Duration::from_secs(8);

/// After a stop: wait (briefly) for the job to end, then delete its object;
/// a job that is not over by then keeps it, for `cleanup` or the lifecycle rule.
async fn linger_and_release(client: &BatchClient, last: &BatchReport, api_timeout: Duration) {
    if last.payload_object.is_none() {
        return;
    }
    if let Ok(report) = client.wait(&last.job_id, STOP_LINGER).await {
        release_object_of(&report, api_timeout).await;
    }
}

/// `batch cleanup`: each object of the store whose jobs are all over, or
/// that no job of its name claims and is older than --older-than, is deleted.
async fn cleanup(args: &CleanupArgs) -> Result<SubmitExit, Failure> {
    let at = wove_submit::store::StoreUrl::parse(&args.store.payload_store).map_err(refused)?;
    let store = store::client(args.connect.api_timeout.seconds).await;
    let client = connect(&args.connect).await;
    let listed = store.list(&at.bucket, &at.prefix).await.map_err(|e| Failure::new(SubmitExit::Api, e))?;
    let now = std::time::SystemTime::now();
    for object in listed {
        let url = format!("s3://{}/{}", at.bucket, object.key);
        let Some(job_name) = at.job_of(&object.key) else {
            println!("kept {url}: not an object of this store's layout");
            continue;
        };
        let jobs = client.jobs_named(&args.job_queue, job_name).await.map_err(client_failure)?;
        let verdict = if jobs.is_empty() {
            let age = object.last_modified.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
            (age >= args.store.older_than).then(|| format!("no job {job_name} in {}", args.job_queue))
        } else if jobs.iter().all(|j| j.status.phase().is_final()) {
            Some(format!("job {job_name} is over"))
        } else {
            None
        };
        match verdict {
            Some(why) => {
                store.delete(&at.bucket, &object.key).await.map_err(|e| Failure::new(SubmitExit::Api, e))?;
                println!("deleted {url}: {why}");
            }
            None => println!("kept {url}: job {job_name} is not over (or the object is younger than --older-than)"),
        }
    }
    Ok(SubmitExit::Success)
}

fn finish_wait(outcome: Result<BatchReport, BatchError>, format: Output) -> Result<SubmitExit, Failure> {
    match outcome {
        Ok(report) => {
            output::print_batch_report(&report, format, Stream::Stdout);
            Ok(SubmitExit::finished(report.phase == wove_submit::Phase::Succeeded, report.exit_code))
        }
        Err(e) => {
            if let Some(last) = e.last_report() {
                output::print_batch_report(last, format, Stream::Stdout);
            }
            Err(client_failure(e))
        }
    }
}

fn reporting(args: &ReportArgs, sender: wove_submit::report::Sender) -> Reporting {
    Reporting { sender, pending_timeout: args.pending_timeout, stop: stop_on_stdin_eof(args.stop_on_stdin_eof) }
}

/// Print the reports and exit as a reported wait does ([`reported_exit`]).
fn finish_reported(outcome: Result<Reported, BatchError>, format: Output) -> Result<SubmitExit, Failure> {
    match outcome {
        Ok(reported) if reported.stopped => Ok(SubmitExit::Success),
        Ok(reported) => {
            output::print_batch_reported(&reported, format);
            let succeeded = reported.report.phase == wove_submit::Phase::Succeeded;
            let finished = SubmitExit::finished(succeeded, reported.report.exit_code);
            reported_exit(reported.undelivered(), reported.ended_job, finished)
        }
        Err(e) => finish_wait(Err(e), format),
    }
}

async fn connect(args: &ConnectArgs) -> BatchClient {
    BatchClient::connect(args.endpoint_url.as_deref(), args.region.as_deref())
        .await
        .api_timeout(args.api_timeout.seconds)
}

fn client_failure(error: BatchError) -> Failure {
    let exit = match &error {
        BatchError::NotFound { .. } => SubmitExit::NotFound,
        BatchError::WaitTimedOut { .. } => SubmitExit::TimedOut,
        _ => SubmitExit::Api,
    };
    Failure::new(exit, error)
}

/// Read the payload and build the checked request (and the object to upload
/// when it travels by reference); also the payload read, and whether the ECS limit applies.
fn build(payload: &PayloadArgs, job: &JobArgs) -> Result<(batch::Plan, wove_proto::Payload, bool), Failure> {
    let encoded = read_payload(&payload.source)?;
    let mut options = job.options()?;
    set(&mut options.compression, payload.compression);
    let plan = batch::plan(&encoded, &options).map_err(refused)?;
    Ok((plan, encoded.payload().clone(), options.ecs_overrides_limit))
}

#[cfg(test)]
mod tests {
    use super::super::overlay::testing::{assert_each_flag_landed, with_options_file};
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        job: JobArgs,
    }

    /// Every flag lands on its own option, by the overlay's one rule.
    #[test]
    fn each_flag_is_laid_over_the_options_file() {
        let dependencies: Vec<Dependency> = vec!["j0".parse().unwrap(), "j1".parse().unwrap()];
        let file = json!({
            "job_queue": "file-queue", "environment": [["A", "1"]], "tags": {"t": "1"}, "command": ["from-file"],
            "depends_on": [dependencies[0]],
            "extra": {"retryStrategy": {"attempts": 2}, "timeout": {"attemptDurationSeconds": 5}},
        });
        let flags = [
            "--job-queue",
            "q",
            "--job-definition",
            "d",
            "--name-prefix",
            "p",
            "--env",
            "B=2",
            "--command",
            "c",
            "--vcpus",
            "2",
            "--memory-mib",
            "512",
            "--gpus",
            "1",
            "--tag",
            "u=2",
            "--propagate-tags",
            "--parameter",
            "k=v",
            "--depends-on",
            "j1",
            "--priority",
            "5",
            "--share-identifier",
            "s",
            "--attempts",
            "3",
            "--attempt-duration",
            "60",
            "--array-size",
            "4",
            "--payload-path-in-container",
            "/p",
            "--no-ecs-overrides-limit",
            "--extra",
            r#"{"retryStrategy": {"evaluateOnExit": []}}"#,
        ];
        let options = with_options_file(&file, |path| {
            let argv = ["test", "--options", path.to_str().unwrap()].into_iter().chain(flags);
            Flags::try_parse_from(argv).unwrap().job.options()
        });
        let given = serde_json::to_value(options.unwrap()).unwrap();
        let want = json!({
            "job_queue": "q", "job_definition": "d", "name_prefix": "p", "environment": [["A", "1"], ["B", "2"]],
            "command": ["c"], "vcpus": "2", "memory_mib": 512, "gpus": 1, "tags": {"t": "1", "u": "2"},
            "propagate_tags": true, "parameters": {"k": "v"}, "depends_on": dependencies,
            "scheduling_priority": 5, "share_identifier": "s", "attempts": 3, "attempt_duration_seconds": 60,
            "array_size": 4, "payload_file": "/p", "ecs_overrides_limit": false,
            "extra": {"retryStrategy": {"attempts": 2, "evaluateOnExit": []}, "timeout": {"attemptDurationSeconds": 5}},
        });
        // Set by --compression and the store's flags, not by a job flag.
        assert_each_flag_landed(&given, want, &["compression", "payload_store"]);
    }
}
