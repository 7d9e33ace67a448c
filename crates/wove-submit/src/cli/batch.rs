//! `wove-submit batch render|submit|status|wait|cancel`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use wove_submit::batch::reporting::{Reported, Reporting};
use wove_submit::batch::{self, BatchClient, BatchError, BatchOptions, BatchReport, Dependency};

use super::args::{
    block_on, key_value, read_payload, refused, reported_exit, seconds, set, stop_on_stdin_eof, PayloadArgs,
    PayloadSourceArgs, ReportArgs, WaitingArgs,
};
use super::output::{self, Output, Stream};
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
    /// Wait for the job to end and exit with the worker's exit code.
    #[arg(long, env = "WOVE_SUBMIT_WAIT")]
    wait: bool,
    #[command(flatten)]
    waiting: WaitingArgs,
    #[command(flatten)]
    reporting: ReportArgs,
    /// Output format.
    #[arg(long, short = 'o', env = "WOVE_SUBMIT_OUTPUT", value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The job's id (as `submit` printed it).
    job_id: String,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Output format.
    #[arg(long, short = 'o', env = "WOVE_SUBMIT_OUTPUT", value_enum, default_value_t = Output::Text)]
    output: Output,
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
#[command(next_help_heading = "AWS")]
struct ConnectArgs {
    /// The Batch endpoint [default: AWS_ENDPOINT_URL_BATCH, then AWS's own].
    #[arg(long, env = "WOVE_SUBMIT_AWS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,
    /// The region [default: AWS_REGION, the profile's, or the instance's].
    #[arg(long, env = "WOVE_SUBMIT_AWS_REGION")]
    region: Option<String>,
    /// Seconds each API call may take.
    #[arg(long, env = "WOVE_SUBMIT_API_TIMEOUT", default_value = "30", value_name = "SECS", value_parser = seconds)]
    api_timeout: Duration,
}

/// Job options. Each overrides the same option from --options.
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
    depends_on: Vec<String>,
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
}

impl JobArgs {
    fn options(&self) -> Result<BatchOptions, Failure> {
        let mut o = match &self.options_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| refused(format!("cannot read --options {}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| refused(format!("--options {}: {e}", path.display())))?
            }
            None => BatchOptions::default(),
        };
        set(&mut o.job_queue, self.job_queue.clone());
        set(&mut o.job_definition, self.job_definition.clone());
        set(&mut o.name_prefix, self.name_prefix.clone());
        o.environment.extend(self.env.iter().cloned());
        if !self.command.is_empty() {
            o.command = Some(self.command.clone());
        }
        if self.vcpus.is_some() {
            o.vcpus = self.vcpus.clone();
        }
        if self.memory_mib.is_some() {
            o.memory_mib = self.memory_mib;
        }
        if self.gpus.is_some() {
            o.gpus = self.gpus;
        }
        o.tags.extend(self.tag.iter().cloned());
        o.propagate_tags |= self.propagate_tags;
        o.parameters.extend(self.parameter.iter().cloned());
        o.depends_on.extend(self.depends_on.iter().map(|d| match d.split_once(':') {
            Some((id, kind)) => Dependency { job_id: id.into(), kind: Some(kind.into()) },
            None => Dependency { job_id: d.clone(), kind: None },
        }));
        if self.priority.is_some() {
            o.scheduling_priority = self.priority;
        }
        if self.share_identifier.is_some() {
            o.share_identifier = self.share_identifier.clone();
        }
        set(&mut o.attempts, self.attempts);
        if self.attempt_duration.is_some() {
            o.attempt_duration_seconds = self.attempt_duration;
        }
        if self.array_size.is_some() {
            o.array_size = self.array_size;
        }
        if self.payload_path_in_container.is_some() {
            o.payload_file = self.payload_path_in_container.clone();
        }
        if self.no_ecs_overrides_limit {
            o.ecs_overrides_limit = false;
        }
        if let Some(extra) = &self.extra {
            o.extra.extend(extra.clone());
        }
        Ok(o)
    }
}

/// Run one `batch` subcommand.
pub fn run(command: Command) -> Result<SubmitExit, Failure> {
    match command {
        Command::Render(args) => {
            let (request, _) = build(&args.payload, &args.job)?;
            println!("{}", serde_json::to_string_pretty(&request.to_json()).unwrap_or_default());
            Ok(SubmitExit::Success)
        }
        Command::Remote(command) => block_on(remote(command)),
    }
}

async fn remote(command: Remote) -> Result<SubmitExit, Failure> {
    match command {
        Remote::Submit(args) => {
            let (request, payload) = build(&args.payload, &args.job)?;
            let sender = if args.wait { args.reporting.sender()? } else { None };
            let client = connect(&args.connect).await.poll_interval(args.waiting.poll);
            let submitted = client.submit(&request).await.map_err(client_failure)?;
            output::print_batch_submitted(&submitted, args.output, args.wait);
            if !args.wait {
                return Ok(SubmitExit::Success);
            }
            match sender {
                None => finish_wait(client.wait(&submitted.job_id, args.waiting.timeout).await, args.output),
                Some(sender) => {
                    let reporting = reporting(&args.reporting, sender);
                    let outcome = client
                        .wait_reporting(&submitted.job_id, args.waiting.timeout, Some(&payload), &reporting)
                        .await;
                    finish_reported(outcome, args.output)
                }
            }
        }
        Remote::Status(args) => {
            let client = connect(&args.connect).await;
            let report = client.status(&args.job_id).await.map_err(client_failure)?;
            output::print_batch_report(&report, args.output, Stream::Stdout);
            Ok(SubmitExit::Success)
        }
        Remote::Wait(args) => {
            let sender = args.reporting.sender()?;
            let client = connect(&args.id.connect).await.poll_interval(args.waiting.poll);
            let Some(sender) = sender else {
                return finish_wait(client.wait(&args.id.job_id, args.waiting.timeout).await, args.id.output);
            };
            let payload =
                if args.payload.is_given() { Some(read_payload(&args.payload)?.payload().clone()) } else { None };
            let reporting = reporting(&args.reporting, sender);
            let outcome =
                client.wait_reporting(&args.id.job_id, args.waiting.timeout, payload.as_ref(), &reporting).await;
            finish_reported(outcome, args.id.output)
        }
        Remote::Cancel(args) => {
            let client = connect(&args.id.connect).await;
            let outcome = client.cancel(&args.id.job_id, &args.reason).await.map_err(client_failure)?;
            output::print_batch_cancelled(&args.id.job_id, &outcome, args.id.output);
            Ok(SubmitExit::Success)
        }
    }
}

fn finish_wait(outcome: Result<BatchReport, BatchError>, format: Output) -> Result<SubmitExit, Failure> {
    match outcome {
        Ok(report) => {
            output::print_batch_report(&report, format, Stream::Stdout);
            Ok(SubmitExit::finished(report.phase == wove_submit::kubernetes::Phase::Succeeded, report.exit_code))
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
            let succeeded = reported.report.phase == wove_submit::kubernetes::Phase::Succeeded;
            let finished = SubmitExit::finished(succeeded, reported.report.exit_code);
            reported_exit(reported.undelivered(), reported.ended_job, finished)
        }
        Err(e) => finish_wait(Err(e), format),
    }
}

async fn connect(args: &ConnectArgs) -> BatchClient {
    BatchClient::connect(args.endpoint_url.as_deref(), args.region.as_deref()).await.api_timeout(args.api_timeout)
}

fn client_failure(error: BatchError) -> Failure {
    let exit = match &error {
        BatchError::NotFound { .. } => SubmitExit::NotFound,
        BatchError::WaitTimedOut { .. } => SubmitExit::TimedOut,
        _ => SubmitExit::Api,
    };
    Failure::new(exit, error)
}

/// Read the payload and build the checked request; also the payload read.
fn build(payload: &PayloadArgs, job: &JobArgs) -> Result<(batch::SubmitJobRequest, wove_proto::Payload), Failure> {
    let encoded = read_payload(&payload.source)?;
    let mut options = job.options()?;
    set(&mut options.compression, payload.compression);
    let request = batch::render(&encoded, &options).map_err(refused)?;
    Ok((request, encoded.payload().clone()))
}
