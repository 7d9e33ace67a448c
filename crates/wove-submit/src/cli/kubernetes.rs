//! `wove-submit kubernetes render|submit|status|wait|logs|cancel`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapEnvSource, EnvFromSource, EnvVar, SecretEnvSource, Toleration, Volume, VolumeMount,
};
use wove_submit::kubernetes::{
    self, Client, ClientError, Indexed, JobOptions, JobReport, LogNotice, PayloadPlacement, RenderError, Reported,
    Reporting, SigningSecret,
};

use super::args::{
    block_on, json_list, json_one, key_value, read_payload, refused, reported_exit, seconds, set, stop_on_stdin_eof,
    ApiTimeoutArgs, CleanupStoreArgs, OutputArgs, PayloadArgs, PayloadSourceArgs, ReportArgs, WaitFlag, WaitingArgs,
};
use super::output::{self, Output, RenderFormat, Stream};
use super::overlay::{self, Given};
use super::store::{self, StoreArgs};
use super::{Failure, SubmitExit};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Job (and the payload Secret, if the payload needs one) for
    /// `kubectl apply -f -`. Needs no cluster.
    #[command(after_long_help = super::exit::help())]
    Render(Box<RenderArgs>),
    #[command(flatten)]
    Remote(Remote),
}

/// The subcommands that talk to a cluster.
#[derive(Debug, Subcommand)]
pub enum Remote {
    /// Submit the Job. With --wait, wait for it and exit with the worker's exit code.
    #[command(after_long_help = super::exit::help())]
    Submit(Box<SubmitArgs>),
    /// How a Job stands: pending, running, succeeded or failed, and why.
    #[command(after_long_help = super::exit::help())]
    Status(NamedArgs),
    /// Wait until a Job succeeds or fails; exit with the worker's exit code.
    #[command(after_long_help = super::exit::help())]
    Wait(Box<WaitArgs>),
    /// Print the log of the Job's worker, following it until the Job ends.
    #[command(after_long_help = super::exit::help())]
    Logs(LogsArgs),
    /// Delete the Job with background propagation: its pods get SIGTERM and
    /// the worker sends task_cancelled. A Job already gone is not an error.
    #[command(after_long_help = super::exit::help())]
    Cancel(NamedArgs),
    /// Delete the payload objects of Jobs that are over (or gone) from a
    /// payload store, for Jobs nobody waited on; objects of Jobs still
    /// pending or running are kept.
    #[command(after_long_help = super::exit::help())]
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Output format.
    #[arg(long, short = 'o', env = "WOVE_SUBMIT_OUTPUT", value_enum, default_value_t = RenderFormat::Yaml)]
    output: RenderFormat,
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
    /// With --wait: stream the worker's log to stdout while waiting.
    #[arg(long, env = "WOVE_SUBMIT_LOGS", requires = "wait")]
    logs: bool,
    #[command(flatten)]
    waiting: WaitingArgs,
    #[command(flatten)]
    reporting: ReportArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct NamedArgs {
    /// The Job's name (as `submit` printed it).
    name: String,
    #[command(flatten)]
    ns: NamespaceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// `--namespace` of a Job that is there already (or of the Jobs `cleanup` looks among).
#[derive(Debug, Args)]
pub struct NamespaceArgs {
    /// The namespace of the Job (cleanup: of the Jobs submitted with the store).
    #[arg(long, short = 'n', env = "WOVE_SUBMIT_NAMESPACE", default_value = "default")]
    namespace: String,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    store: CleanupStoreArgs,
    #[command(flatten)]
    ns: NamespaceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    named: NamedArgs,
    #[command(flatten)]
    waiting: WaitingArgs,
    #[command(flatten)]
    reporting: ReportArgs,
    /// With --report: the payload the Job carries [default: read back from the Job].
    #[command(flatten, next_help_heading = "Reporting failures outside the worker")]
    payload: PayloadSourceArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The Job's name.
    name: String,
    #[command(flatten)]
    ns: NamespaceArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Stop following after this many seconds [default: until the Job ends].
    #[arg(long, env = "WOVE_SUBMIT_LOGS_TIMEOUT", value_name = "SECS", value_parser = seconds)]
    timeout: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Cluster")]
struct ConnectArgs {
    /// Kubeconfig file [default: KUBECONFIG, ~/.kube/config, then in-cluster].
    #[arg(long, env = "WOVE_SUBMIT_KUBECONFIG", value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context [default: its current context].
    #[arg(long, env = "WOVE_SUBMIT_CONTEXT")]
    context: Option<String>,
    #[command(flatten)]
    api_timeout: ApiTimeoutArgs,
}

/// Job options, laid over those of --options by one rule (cli/overlay.rs).
#[derive(Debug, Args)]
#[command(next_help_heading = "Job")]
struct JobArgs {
    /// Job options as JSON (the library's `JobOptions`: snake_case keys,
    /// Kubernetes structures inside them as in a manifest).
    #[arg(long = "options", env = "WOVE_SUBMIT_OPTIONS", value_name = "FILE")]
    options_file: Option<PathBuf>,
    /// The worker image (required, here or in --options).
    #[arg(long, env = "WOVE_SUBMIT_IMAGE")]
    image: Option<String>,
    /// Namespace of the Job [default: default].
    #[arg(long, short = 'n', env = "WOVE_SUBMIT_NAMESPACE")]
    namespace: Option<String>,
    /// Start of the Job's name [default: wove].
    #[arg(long, env = "WOVE_SUBMIT_NAME_PREFIX")]
    name_prefix: Option<String>,
    /// Always, IfNotPresent or Never [default: the cluster's].
    #[arg(long, env = "WOVE_SUBMIT_IMAGE_PULL_POLICY", value_name = "POLICY")]
    image_pull_policy: Option<kubernetes::ImagePullPolicy>,
    /// A registry credentials Secret (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_IMAGE_PULL_SECRETS", value_name = "NAME", value_delimiter = ',')]
    image_pull_secret: Vec<String>,
    /// The container's command, one word per flag [default: wove-worker].
    #[arg(long, env = "WOVE_SUBMIT_COMMAND", value_name = "WORD", allow_hyphen_values = true)]
    command: Vec<String>,
    /// An argument for the worker (repeat).
    #[arg(long = "arg", env = "WOVE_SUBMIT_ARGS", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment variable NAME=VALUE (repeat; one per line in the variable).
    #[arg(long, env = "WOVE_SUBMIT_ENV", value_name = "NAME=VALUE", value_delimiter = '\n', value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Take variables from this Secret (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_ENV_FROM_SECRET", value_name = "NAME", value_delimiter = ',')]
    env_from_secret: Vec<String>,
    /// Take variables from this ConfigMap (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_ENV_FROM_CONFIGMAP", value_name = "NAME", value_delimiter = ',')]
    env_from_configmap: Vec<String>,
    /// CPU request, e.g. 500m.
    #[arg(long, env = "WOVE_SUBMIT_CPU", value_name = "QUANTITY")]
    cpu: Option<String>,
    /// Memory request, e.g. 1Gi.
    #[arg(long, env = "WOVE_SUBMIT_MEMORY", value_name = "QUANTITY")]
    memory: Option<String>,
    /// CPU limit.
    #[arg(long, env = "WOVE_SUBMIT_CPU_LIMIT", value_name = "QUANTITY")]
    cpu_limit: Option<String>,
    /// Memory limit.
    #[arg(long, env = "WOVE_SUBMIT_MEMORY_LIMIT", value_name = "QUANTITY")]
    memory_limit: Option<String>,
    /// GPUs (limit on nvidia.com/gpu).
    #[arg(long, env = "WOVE_SUBMIT_GPUS", value_name = "N")]
    gpus: Option<u32>,
    /// The pod's service account [default: none, and no API token mounted].
    #[arg(long, env = "WOVE_SUBMIT_SERVICE_ACCOUNT")]
    service_account: Option<String>,
    /// A node label the pod needs, KEY=VALUE (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_NODE_SELECTOR", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = key_value)]
    node_selector: Vec<(String, String)>,
    /// A toleration as JSON, or a JSON array of them (repeat).
    #[arg(long, env = "WOVE_SUBMIT_TOLERATIONS", value_name = "JSON", value_parser = json_list::<Toleration>)]
    toleration: Vec<Vec<Toleration>>,
    /// The pod's affinity as JSON.
    #[arg(long, env = "WOVE_SUBMIT_AFFINITY", value_name = "JSON", value_parser = json_one::<Affinity>)]
    affinity: Option<Affinity>,
    /// The pod's priority class.
    #[arg(long, env = "WOVE_SUBMIT_PRIORITY_CLASS")]
    priority_class: Option<String>,
    /// A volume as JSON, or a JSON array of them (repeat).
    #[arg(long, env = "WOVE_SUBMIT_VOLUMES", value_name = "JSON", value_parser = json_list::<Volume>)]
    volume: Vec<Vec<Volume>>,
    /// A volume mount of the worker's container as JSON, or an array (repeat).
    #[arg(long, env = "WOVE_SUBMIT_VOLUME_MOUNTS", value_name = "JSON", value_parser = json_list::<VolumeMount>)]
    volume_mount: Vec<Vec<VolumeMount>>,
    /// A label KEY=VALUE on the Job and its pods (repeat, or comma-separated).
    #[arg(long, env = "WOVE_SUBMIT_LABELS", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = key_value)]
    label: Vec<(String, String)>,
    /// An annotation KEY=VALUE on the Job and its pods (repeat; one per line in the variable).
    #[arg(long, env = "WOVE_SUBMIT_ANNOTATIONS", value_name = "KEY=VALUE", value_delimiter = '\n', value_parser = key_value)]
    annotation: Vec<(String, String)>,
    /// User id of the container [default: 65532].
    #[arg(long, env = "WOVE_SUBMIT_RUN_AS_USER", value_name = "UID")]
    run_as_user: Option<i64>,
    /// Group id and fsGroup of the pod [default: 65532].
    #[arg(long, env = "WOVE_SUBMIT_RUN_AS_GROUP", value_name = "GID")]
    run_as_group: Option<i64>,
    /// Allow the container to run as root (off by default: runAsNonRoot).
    #[arg(long, env = "WOVE_SUBMIT_ALLOW_ROOT")]
    allow_root: bool,
    /// Mount the root filesystem read-only (/tmp gets an emptyDir).
    #[arg(long, env = "WOVE_SUBMIT_READ_ONLY_ROOT")]
    read_only_root: bool,
    /// Retries of a failed pod [default: 0].
    #[arg(long, env = "WOVE_SUBMIT_BACKOFF_LIMIT", value_name = "N")]
    backoff_limit: Option<i32>,
    /// Seconds the whole Job may run.
    #[arg(long, env = "WOVE_SUBMIT_ACTIVE_DEADLINE", value_name = "SECS")]
    active_deadline: Option<i64>,
    /// Seconds a finished Job is kept [default: 3600].
    #[arg(long, env = "WOVE_SUBMIT_TTL_AFTER_FINISHED", value_name = "SECS")]
    ttl_after_finished: Option<i32>,
    /// The worker's shutdown budget in seconds [default: 25].
    #[arg(long, env = "WOVE_SUBMIT_SHUTDOWN_BUDGET", value_name = "SECS")]
    shutdown_budget: Option<u64>,
    /// The pod's terminationGracePeriodSeconds [default: shutdown budget + 5].
    #[arg(long, env = "WOVE_SUBMIT_TERMINATION_GRACE", value_name = "SECS")]
    termination_grace: Option<i64>,
    /// The signing secret: a Kubernetes Secret NAME, or NAME:KEY [key default: secret].
    #[arg(long, env = "WOVE_SUBMIT_SIGNING_SECRET", value_name = "NAME[:KEY]")]
    signing_secret: Option<SigningSecret>,
    /// Mount the signing secret as a file instead of an environment variable.
    #[arg(long, env = "WOVE_SUBMIT_SIGNING_SECRET_AS_FILE", requires = "signing_secret")]
    signing_secret_as_file: bool,
    /// Where the payload travels: auto (environment while small), env, or secret.
    #[arg(long, env = "WOVE_SUBMIT_PAYLOAD_PLACEMENT", value_parser = placement)]
    payload_placement: Option<PayloadPlacement>,
    /// Largest base64 payload kept in the environment under `auto` [default: 32768].
    #[arg(long, env = "WOVE_SUBMIT_INLINE_PAYLOAD_MAX", value_name = "BYTES")]
    inline_payload_max: Option<usize>,
    /// Indexed completions: run N pods with JOB_COMPLETION_INDEX 0..N-1.
    #[arg(long, env = "WOVE_SUBMIT_COMPLETIONS", value_name = "N")]
    completions: Option<i32>,
    /// With --completions: pods at once [default: all].
    #[arg(long, env = "WOVE_SUBMIT_PARALLELISM", value_name = "N", requires = "completions")]
    parallelism: Option<i32>,
    /// With --completions: retries of each index on its own.
    #[arg(long, env = "WOVE_SUBMIT_BACKOFF_LIMIT_PER_INDEX", value_name = "N", requires = "completions")]
    backoff_limit_per_index: Option<i32>,
    /// With --backoff-limit-per-index: fail the Job after this many failed indexes.
    #[arg(long, env = "WOVE_SUBMIT_MAX_FAILED_INDEXES", value_name = "N", requires = "backoff_limit_per_index")]
    max_failed_indexes: Option<i32>,
    /// Create the Job suspended.
    #[arg(long, env = "WOVE_SUBMIT_SUSPEND")]
    suspend: bool,
    /// A JSON merge patch (RFC 7386) applied to the built Job, as Wove's
    /// job_factory would change it; `@FILE` reads it from a file. The result
    /// is checked like any rendered Job.
    #[arg(long, env = "WOVE_SUBMIT_PATCH", value_name = "JSON|@FILE")]
    patch: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Run one `kubernetes` subcommand.
pub fn run(command: Command) -> Result<SubmitExit, Failure> {
    match command {
        Command::Render(args) => {
            let (manifest, _) = build(&args.payload, &args.job)?;
            output::print_manifest(&manifest, args.output).map_err(|e| Failure::new(SubmitExit::Api, e))?;
            if let Some(object) = &manifest.payload_object {
                // Offline: say what `submit` would do, beside the Job it would create.
                eprintln!("wove-submit: the payload travels by reference: {}", object.plan());
            }
            Ok(SubmitExit::Success)
        }
        Command::Remote(command) => block_on(remote(command)),
    }
}

async fn remote(command: Remote) -> Result<SubmitExit, Failure> {
    match command {
        Remote::Submit(args) => submit(*args).await,
        Remote::Status(args) => {
            let client = connect(&args.connect).await?;
            let report = client.status(&args.ns.namespace, &args.name).await.map_err(client_failure)?;
            output::print_report(&report, args.output.format, Stream::Stdout);
            Ok(SubmitExit::Success)
        }
        Remote::Wait(args) => {
            let sender = args.reporting.sender()?;
            let client = connect(&args.named.connect).await?.poll_interval(args.waiting.poll);
            let (namespace, name, timeout) = (&args.named.ns.namespace, &args.named.name, args.waiting.timeout);
            let payload = match (&sender, args.payload.is_given()) {
                (Some(_), true) => Some(read_payload(&args.payload)?.payload().clone()),
                // A payload by reference is not in the Job to be read back: it is in the store.
                (Some(_), false) => match client.status(namespace, name).await.ok().and_then(|r| r.payload_object) {
                    Some(url) => {
                        let store = store::client(args.named.connect.api_timeout.seconds).await;
                        Some(store::download_payload(&store, &url, None).await?)
                    }
                    None => None,
                },
                _ => None,
            };
            let api_timeout = args.named.connect.api_timeout.seconds;
            match sender {
                None => {
                    let outcome = client.wait(namespace, name, timeout).await;
                    if let Ok(report) = &outcome {
                        release_object_of(report, api_timeout).await;
                    }
                    finish_wait(outcome, args.named.output.format, Stream::Stdout)
                }
                Some(sender) => {
                    let reporting = reporting(&args.reporting, sender);
                    let outcome = client.wait_reporting(namespace, name, timeout, payload.as_ref(), &reporting).await;
                    if let Ok(reported) = &outcome {
                        after_reported(&client, reported, api_timeout).await;
                    }
                    finish_reported(outcome, args.named.output.format, Stream::Stdout)
                }
            }
        }
        Remote::Logs(args) => {
            let client = connect(&args.connect).await?;
            let mut stdout = tokio::io::stdout();
            let follow = client.logs(&args.ns.namespace, &args.name, &mut stdout, print_notice);
            match args.timeout {
                None => follow.await.map_err(client_failure)?,
                Some(limit) => match tokio::time::timeout(limit, follow).await {
                    Ok(done) => done.map_err(client_failure)?,
                    Err(_) => {
                        return Err(Failure::new(
                            SubmitExit::TimedOut,
                            format!("stopped following the log after {} s", limit.as_secs_f64()),
                        ))
                    }
                },
            }
            Ok(SubmitExit::Success)
        }
        Remote::Cancel(args) => {
            let client = connect(&args.connect).await?;
            // Read before the Job goes: which object it reads, if any.
            let object = client.status(&args.ns.namespace, &args.name).await.ok().and_then(|r| r.payload_object);
            let result = client.cancel(&args.ns.namespace, &args.name).await.map_err(client_failure)?;
            output::print_cancelled(&args.ns.namespace, &args.name, result, args.output.format);
            if object.is_some() {
                // The Job is deleted: no pod will start again to read it.
                store::release(&store::client(args.connect.api_timeout.seconds).await, object.as_deref()).await;
            }
            Ok(SubmitExit::Success)
        }
        Remote::Cleanup(args) => cleanup(&args).await,
    }
}

/// Delete the Job's payload object once the Job is over (never while the Job
/// controller may start another pod: the Job is then not over).
async fn release_object_of(report: &JobReport, api_timeout: Duration) {
    if report.phase.is_final() && report.payload_object.is_some() {
        store::release(&store::client(api_timeout).await, report.payload_object.as_deref()).await;
    }
}

/// How long a watch stopped from outside still waits for its Job to end, to
/// delete the payload object (within the 10 s the Wove snippet gives it).
const STOP_LINGER: Duration = Duration::from_secs(8);

/// After a reported wait: delete the object of a Job that is over; after a
/// stop, wait briefly for the Job to end first.
async fn after_reported(client: &Client, reported: &Reported, api_timeout: Duration) {
    if !reported.stopped {
        return release_object_of(&reported.report, api_timeout).await;
    }
    if reported.report.payload_object.is_some() {
        if let Ok(report) = client.wait(&reported.report.namespace, &reported.report.name, STOP_LINGER).await {
            release_object_of(&report, api_timeout).await;
        }
    }
}

/// `kubernetes cleanup`: each object of the store whose Job is over, or
/// gone and older than --older-than, is deleted.
async fn cleanup(args: &CleanupArgs) -> Result<SubmitExit, Failure> {
    let at = wove_submit::store::StoreUrl::parse(&args.store.payload_store).map_err(refused)?;
    let store = store::client(args.connect.api_timeout.seconds).await;
    let client = connect(&args.connect).await?;
    let listed = store.list(&at.bucket, &at.prefix).await.map_err(|e| Failure::new(SubmitExit::Api, e))?;
    let now = std::time::SystemTime::now();
    for object in listed {
        let url = format!("s3://{}/{}", at.bucket, object.key);
        let Some(job_name) = at.job_of(&object.key) else {
            println!("kept {url}: not an object of this store's layout");
            continue;
        };
        let verdict = match client.status(&args.ns.namespace, job_name).await {
            Ok(report) if report.phase.is_final() => Some(format!("Job {job_name} is over")),
            Ok(_) => None,
            Err(ClientError::NotFound { .. }) => {
                let age = object.last_modified.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
                (age >= args.store.older_than).then(|| format!("no Job {job_name} in {}", args.ns.namespace))
            }
            Err(e) => return Err(client_failure(e)),
        };
        match verdict {
            Some(why) => {
                store.delete(&at.bucket, &object.key).await.map_err(|e| Failure::new(SubmitExit::Api, e))?;
                println!("deleted {url}: {why}");
            }
            None => println!("kept {url}: Job {job_name} is not over (or the object is younger than --older-than)"),
        }
    }
    Ok(SubmitExit::Success)
}

async fn submit(args: SubmitArgs) -> Result<SubmitExit, Failure> {
    let (mut manifest, payload) = build(&args.payload, &args.job)?;
    let sender = if args.wait.on { args.reporting.sender()? } else { None };
    if let Some(object) = manifest.payload_object.clone() {
        let store = store::client(args.connect.api_timeout.seconds).await;
        if let Some(url) = store::upload(&store, &object).await? {
            manifest.set_payload_url(&url);
        }
    }
    let client = connect(&args.connect).await?.poll_interval(args.waiting.poll);
    let submitted = client.submit(&manifest).await.map_err(client_failure)?;
    let to = if args.logs { Stream::Stderr } else { Stream::Stdout };
    output::print_submitted(&manifest, &submitted, args.output.format, args.wait.on, to);
    if !args.wait.on {
        return Ok(SubmitExit::Success);
    }
    let (namespace, name) = (manifest.namespace(), manifest.name());
    if let Some(sender) = sender {
        let reporting = reporting(&args.reporting, sender);
        let outcome = client.wait_reporting(namespace, name, args.waiting.timeout, Some(&payload), &reporting).await;
        if let Ok(reported) = &outcome {
            after_reported(&client, reported, args.connect.api_timeout.seconds).await;
        }
        return finish_reported(outcome, args.output.format, to);
    }
    let waiting = client.wait(namespace, name, args.waiting.timeout);
    let outcome = if args.logs {
        let mut stdout = tokio::io::stdout();
        let follow = client.logs(namespace, name, &mut stdout, print_notice);
        tokio::pin!(follow);
        tokio::pin!(waiting);
        // The log ends when the Job ends; the wait decides, the log gets a
        // moment to deliver its last lines.
        let (outcome, followed) = tokio::select! {
            outcome = &mut waiting => (outcome, false),
            followed = &mut follow => {
                if let Err(e) = followed {
                    eprintln!("wove-submit: {}", wove_submit::error_chain(&e));
                }
                (waiting.await, true)
            }
        };
        // A finished log must not be polled again; an unfinished one gets its moment.
        if !followed {
            let _ = tokio::time::timeout(kubernetes::client::LOG_DRAIN, follow).await;
        }
        outcome
    } else {
        waiting.await
    };
    if let Ok(report) = &outcome {
        release_object_of(report, args.connect.api_timeout.seconds).await;
    }
    finish_wait(outcome, args.output.format, to)
}

fn finish_wait(outcome: Result<JobReport, ClientError>, format: Output, to: Stream) -> Result<SubmitExit, Failure> {
    match outcome {
        Ok(report) => {
            output::print_report(&report, format, to);
            Ok(SubmitExit::finished(report.succeeded(), report.exit_code))
        }
        Err(e) => {
            if let Some(last) = e.last_report() {
                output::print_report(last, format, to);
            }
            Err(client_failure(e))
        }
    }
}

fn reporting(args: &ReportArgs, sender: wove_submit::report::Sender) -> Reporting {
    Reporting {
        pending_timeout: args.pending_timeout,
        stop: stop_on_stdin_eof(args.stop_on_stdin_eof),
        ..Reporting::new(sender)
    }
}

/// Print the reports and exit as a reported wait does ([`reported_exit`]).
fn finish_reported(outcome: Result<Reported, ClientError>, format: Output, to: Stream) -> Result<SubmitExit, Failure> {
    match outcome {
        Ok(reported) if reported.stopped => Ok(SubmitExit::Success),
        Ok(reported) => {
            output::print_reported(&reported, format, to);
            let finished = SubmitExit::finished(reported.report.succeeded(), reported.report.exit_code);
            reported_exit(reported.undelivered(), reported.ended_job, finished)
        }
        Err(e) => finish_wait(Err(e), format, to),
    }
}

async fn connect(args: &ConnectArgs) -> Result<Client, Failure> {
    let client = Client::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await.map_err(client_failure)?;
    Ok(client.api_timeout(args.api_timeout.seconds))
}

fn client_failure(error: ClientError) -> Failure {
    let exit = match &error {
        ClientError::NotFound { .. } => SubmitExit::NotFound,
        ClientError::WaitTimedOut { .. } => SubmitExit::TimedOut,
        _ => SubmitExit::Api,
    };
    Failure::new(exit, error)
}

/// Read the payload, merge the options and build the checked Job; also the payload read.
fn build(payload: &PayloadArgs, job: &JobArgs) -> Result<(kubernetes::Manifest, wove_proto::Payload), Failure> {
    let encoded = read_payload(&payload.source)?.sensitive(payload.sensitive);
    let mut options = job.options()?;
    set(&mut options.compression, payload.compression);
    let patch = job.patch.as_deref().map(read_patch).transpose()?;
    let rendered = kubernetes::render_with(&encoded, &options, |built| match &patch {
        Some(patch) => apply_patch(built, patch),
        None => Ok(()),
    });
    let manifest = rendered.map_err(|e: RenderError| match e {
        // The patch's own words: it is the caller's flag, not the Job, that is wrong.
        RenderError::Hook(cause) => refused(cause.to_string()),
        other => refused(other),
    })?;
    Ok((manifest, encoded.payload().clone()))
}

fn read_patch(text: &str) -> Result<serde_json::Value, Failure> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| refused(format!("cannot read --patch file {path}: {e}")))?
        }
        None => text.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| refused(format!("--patch is not JSON: {e}")))
}

fn apply_patch(job: &mut Job, patch: &serde_json::Value) -> Result<(), String> {
    let mut value = serde_json::to_value(&*job).map_err(|e| e.to_string())?;
    json_patch::merge(&mut value, patch);
    *job = serde_json::from_value(value).map_err(|e| format!("--patch makes the Job unreadable: {e}"))?;
    Ok(())
}

impl JobArgs {
    /// The options file, with every flag that was given laid over it (cli/overlay.rs).
    fn options(&self) -> Result<JobOptions, Failure> {
        let env: Vec<EnvVar> = self
            .env
            .iter()
            .map(|(name, value)| EnvVar { name: name.clone(), value: Some(value.clone()), ..Default::default() })
            .collect();
        let secrets = self.env_from_secret.iter().map(|name| EnvFromSource {
            secret_ref: Some(SecretEnvSource { name: name.clone(), optional: None }),
            ..Default::default()
        });
        let configmaps = self.env_from_configmap.iter().map(|name| EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: name.clone(), optional: None }),
            ..Default::default()
        });
        let signing =
            self.signing_secret.clone().map(|secret| SigningSecret { as_file: self.signing_secret_as_file, ..secret });
        let indexed = self.completions.map(|completions| Indexed {
            completions,
            parallelism: self.parallelism,
            backoff_limit_per_index: self.backoff_limit_per_index,
            max_failed_indexes: self.max_failed_indexes,
        });
        let mut given = Given::default();
        given
            .value("image", self.image.as_ref())
            .value("namespace", self.namespace.as_ref())
            .value("name_prefix", self.name_prefix.as_ref())
            .value("image_pull_policy", self.image_pull_policy)
            .items("image_pull_secrets", &self.image_pull_secret)
            .items("command", &self.command)
            .items("args", &self.args)
            .items("env", env)
            .items("env_from", secrets.chain(configmaps))
            .value("resources.requests.cpu", self.cpu.as_ref())
            .value("resources.requests.memory", self.memory.as_ref())
            .value("resources.limits.cpu", self.cpu_limit.as_ref())
            .value("resources.limits.memory", self.memory_limit.as_ref())
            .value_at(&["resources", "limits", "nvidia.com/gpu"], self.gpus.map(|n| n.to_string()))
            .value("service_account", self.service_account.as_ref())
            .entries("node_selector", &self.node_selector)
            .items("tolerations", self.toleration.iter().flatten())
            .value("affinity", self.affinity.as_ref())
            .value("priority_class", self.priority_class.as_ref())
            .items("volumes", self.volume.iter().flatten())
            .items("volume_mounts", self.volume_mount.iter().flatten())
            .entries("labels", &self.label)
            .entries("annotations", &self.annotation)
            .value("security.run_as_user", self.run_as_user)
            .value("security.run_as_group", self.run_as_group)
            .switch("security.run_as_non_root", self.allow_root, false)
            .switch("security.read_only_root_filesystem", self.read_only_root, true)
            .value("backoff_limit", self.backoff_limit)
            .value("active_deadline_seconds", self.active_deadline)
            .value("ttl_seconds_after_finished", self.ttl_after_finished)
            .value("shutdown_budget_seconds", self.shutdown_budget)
            .value("termination_grace_period_seconds", self.termination_grace)
            .value("signing_secret", signing)
            .value("payload_placement", self.payload_placement)
            .value("inline_payload_max_bytes", self.inline_payload_max)
            .value("indexed", indexed)
            .switch("suspend", self.suspend, true);
        let mut options: JobOptions = overlay::options(self.options_file.as_deref(), given, &["command"])?;
        self.store.apply(&mut options.payload_store)?;
        Ok(options)
    }
}

fn placement(text: &str) -> Result<PayloadPlacement, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("`{text}` is not auto, env or secret"))
}

/// The manifest's objects, each with its `apiVersion` and `kind`, Secret first.
pub fn render_typed(manifest: &kubernetes::Manifest) -> Vec<serde_json::Value> {
    let json = manifest.to_json();
    match json["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![json],
    }
}
/// What the log follower says beside the log: on stderr, so that stdout is the log alone.
fn print_notice(notice: LogNotice<'_>) {
    match notice {
        LogNotice::Pod(pod) => eprintln!("==> pod {pod} <=="),
        LogNotice::Lost { error, .. } => eprintln!("wove-submit: {}", wove_submit::error_chain(&error)),
    }
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

    fn options(file: serde_json::Value, flags: &[&str]) -> serde_json::Value {
        let options = with_options_file(&file, |path| {
            let argv = ["test", "--options", path.to_str().unwrap()].into_iter().chain(flags.iter().copied());
            Flags::try_parse_from(argv).unwrap().job.options()
        });
        serde_json::to_value(options.unwrap()).unwrap()
    }

    /// Every flag lands on its own option, by the overlay's one rule.
    #[test]
    fn each_flag_is_laid_over_the_options_file() {
        let file = json!({
            "image": "file:1", "command": ["from-file"], "args": ["a"], "env": [{"name": "F", "value": "1"}],
            "labels": {"f": "1"}, "security": {"run_as_user": 1, "run_as_group": 2},
            "resources": {"requests": {"cpu": "100m"}}, "indexed": {"completions": 2, "parallelism": 1},
        });
        let given = options(
            file,
            &[
                "--image",
                "flag:2",
                "--namespace",
                "ns",
                "--name-prefix",
                "p",
                "--image-pull-policy",
                "Always",
                "--image-pull-secret",
                "reg",
                "--command",
                "c1",
                "--command",
                "c2",
                "--arg",
                "b",
                "--env",
                "G=2",
                "--env-from-secret",
                "s",
                "--env-from-configmap",
                "m",
                "--memory",
                "1Gi",
                "--cpu-limit",
                "2",
                "--memory-limit",
                "2Gi",
                "--gpus",
                "1",
                "--service-account",
                "sa",
                "--node-selector",
                "zone=a",
                "--toleration",
                r#"[{"key": "k", "operator": "Exists"}]"#,
                "--affinity",
                r#"{"nodeAffinity": {}}"#,
                "--priority-class",
                "high",
                "--volume",
                r#"[{"name": "v", "emptyDir": {}}]"#,
                "--volume-mount",
                r#"[{"name": "v", "mountPath": "/v"}]"#,
                "--label",
                "g=2",
                "--annotation",
                "a=b",
                "--run-as-user",
                "7",
                "--allow-root",
                "--read-only-root",
                "--backoff-limit",
                "3",
                "--active-deadline",
                "60",
                "--ttl-after-finished",
                "30",
                "--shutdown-budget",
                "20",
                "--termination-grace",
                "40",
                "--signing-secret",
                "sec:key",
                "--signing-secret-as-file",
                "--payload-placement",
                "secret",
                "--inline-payload-max",
                "100",
                "--completions",
                "4",
                "--suspend",
            ],
        );
        let want = json!({
            "image": "flag:2", "namespace": "ns", "name_prefix": "p", "image_pull_policy": "Always",
            "image_pull_secrets": ["reg"], "command": ["c1", "c2"], "args": ["a", "b"],
            "env": [{"name": "F", "value": "1"}, {"name": "G", "value": "2"}],
            "env_from": [{"secretRef": {"name": "s"}}, {"configMapRef": {"name": "m"}}],
            "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}},
            "service_account": "sa", "node_selector": {"zone": "a"},
            "tolerations": [{"key": "k", "operator": "Exists"}], "affinity": {"nodeAffinity": {}},
            "priority_class": "high", "volumes": [{"name": "v", "emptyDir": {}}],
            "volume_mounts": [{"name": "v", "mountPath": "/v"}], "labels": {"f": "1", "g": "2"},
            "annotations": {"a": "b"},
            "security": {"run_as_user": 7, "run_as_group": 2, "run_as_non_root": false, "read_only_root_filesystem": true},
            "backoff_limit": 3, "active_deadline_seconds": 60, "ttl_seconds_after_finished": 30,
            "shutdown_budget_seconds": 20, "termination_grace_period_seconds": 40,
            "signing_secret": {"name": "sec", "key": "key", "as_file": true}, "payload_placement": "secret",
            "inline_payload_max_bytes": 100,
            "indexed": {"completions": 4, "parallelism": null, "backoff_limit_per_index": null, "max_failed_indexes": null},
            "suspend": true,
        });
        // Set by --compression and the store's flags, not by a job flag.
        assert_each_flag_landed(&given, want, &["compression", "payload_store"]);
    }

    #[test]
    fn no_flags_leave_the_file_as_it_reads() {
        let file = json!({"image": "file:1", "command": ["from-file"], "backoff_limit": 2});
        let read: JobOptions = serde_json::from_value(file.clone()).unwrap();
        assert_eq!(options(file, &[]), serde_json::to_value(read).unwrap());
    }
}
