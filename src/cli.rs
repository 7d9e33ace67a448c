//! Command-line flags, each with an environment variable, turned into a [`Config`].
//!
//! Parsing does no I/O beyond reading the secret file and what
//! [`RunnerSettings::detect`] reads; everything is validated here so the worker starts only
//! with a configuration that makes sense. Every default is the config's own (its `Default`
//! impls and constants), shown by clap from there.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use wove_deliver::args::{seconds, shown_seconds, ArgsError, DeliveryArgs};
use wove_proto::env as vars;

use crate::config::{Config, DeliveryConfig, PayloadSource, RunnerSettings, TaskLimits};
use crate::logging::LogFormat;
use crate::payload_fetch::{PayloadRef, RefError};

const PAYLOAD_HELP: &str = "\
Payload sources (first found wins):
  --payload-file PATH / WOVE_BACKEND_PAYLOAD_FILE   JSON or base64, detected
  PAYLOAD argument                                  base64, as Wove's own worker takes it
  --payload-url URL / WOVE_BACKEND_PAYLOAD_URL     s3://bucket/key (the job's own AWS
                                                    identity) or https:// (e.g. presigned),
      with --payload-sha256 / WOVE_BACKEND_PAYLOAD_SHA256 (required: checked before
      anything is decoded) and --payload-size / WOVE_BACKEND_PAYLOAD_SIZE
  WOVE_BACKEND_PAYLOAD                              base64, as Wove's adapters set it
Base64 may hold gzip-compressed JSON. A payload with a `tasks` array holds many
tasks: each process runs the one at its index (--index, else JOB_COMPLETION_INDEX,
else AWS_BATCH_JOB_ARRAY_INDEX).

Signing (secrets never come from the payload):
  WOVE_WORKER_SIGNING_SECRET        secrets separated by whitespace, current first
  WOVE_WORKER_SIGNING_SECRET_FILE   a file with one secret per line
  With no secret, events go unsigned (see --require-signing).";

/// Runs one Wove task from a backend payload and posts its events back.
#[derive(Debug, Parser)]
#[command(name = "wove-worker", version, about, after_long_help = after_help(), args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A tool command instead of running a payload.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The base64 payload (otherwise read from WOVE_BACKEND_PAYLOAD).
    #[arg(value_name = "PAYLOAD")]
    pub payload: Option<String>,

    /// Read the payload from a file (JSON or base64), e.g. one mounted from a Secret.
    #[arg(long, env = vars::PAYLOAD_FILE, value_name = "PATH")]
    pub payload_file: Option<PathBuf>,

    /// Fetch the payload from this URL: s3://bucket/key, read with the job's own
    /// AWS identity, or https:// (a presigned URL). Prefer the environment
    /// variable: a presigned URL is a credential, and arguments are visible.
    #[arg(long, env = vars::PAYLOAD_URL, value_name = "URL", hide_env_values = true)]
    pub payload_url: Option<String>,

    /// Lowercase hex SHA-256 of the object at --payload-url (required with it).
    #[arg(long, env = vars::PAYLOAD_SHA256, value_name = "HEX")]
    pub payload_sha256: Option<String>,

    /// Size in bytes of the object at --payload-url; another size is refused before it is read.
    #[arg(long, env = vars::PAYLOAD_SIZE, value_name = "BYTES")]
    pub payload_size: Option<String>,

    /// Allow plain http for --payload-url and the S3 endpoint: for a test endpoint only.
    #[arg(long, env = "AWS_ALLOW_HTTP")]
    pub payload_allow_http: bool,

    /// Largest payload, in bytes of JSON (after base64 and gzip).
    #[arg(long, env = "WOVE_WORKER_MAX_PAYLOAD_BYTES", default_value_t = crate::config::DEFAULT_MAX_PAYLOAD_BYTES, value_name = "BYTES", value_parser = bytes)]
    pub max_payload_bytes: usize,

    /// Seconds a payload file may take to read (a FIFO, a stalled network
    /// filesystem), or a payload URL to fetch, retries included.
    #[arg(long, env = "WOVE_WORKER_READ_TIMEOUT", default_value = shown_seconds(crate::config::DEFAULT_READ_TIMEOUT), value_name = "SECS", value_parser = seconds)]
    pub read_timeout: Duration,

    /// Most arguments of a task's program.
    #[arg(long, env = "WOVE_WORKER_MAX_TASK_ARGS", default_value_t = TaskLimits::default().args, value_name = "N")]
    pub max_task_args: usize,

    /// Most environment variables a task sets.
    #[arg(long, env = "WOVE_WORKER_MAX_TASK_ENV", default_value_t = TaskLimits::default().env, value_name = "N")]
    pub max_task_env: usize,

    /// Longest task argument, or NAME=value, in bytes.
    #[arg(long, env = "WOVE_WORKER_MAX_TASK_STRING_BYTES", default_value_t = TaskLimits::default().string_bytes, value_name = "BYTES", value_parser = bytes)]
    pub max_task_string_bytes: usize,

    /// Largest result, in bytes as sent; a larger one fails the task (ResultTooLarge).
    #[arg(long, env = "WOVE_WORKER_MAX_RESULT_BYTES", default_value_t = TaskLimits::default().result_bytes, value_name = "BYTES", value_parser = bytes)]
    pub max_result_bytes: usize,

    /// Largest WebAssembly module, from a file, the payload or a download.
    #[arg(long, env = "WOVE_WORKER_MAX_WASM_MODULE_BYTES", default_value_t = TaskLimits::default().wasm_module_bytes as usize, value_name = "BYTES", value_parser = bytes)]
    pub max_wasm_module_bytes: usize,

    /// Run task N of a many-task payload (its `tasks` array) [default: the
    /// platform's index, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX].
    // Text, checked where the platform's index is: one that is not a number is exit 65 either way.
    #[arg(long, env = vars::INDEX, value_name = "N", allow_hyphen_values = true)]
    pub index: Option<String>,

    /// Print each event (headers and body, signed, exactly as it would be sent)
    /// to stdout as a JSON line instead of posting it.
    #[arg(long, env = "WOVE_WORKER_PRINT_EVENTS")]
    pub print_events: bool,

    /// Signing, retries and TLS trust: the same flags as `wove-submit`'s when it reports.
    #[command(flatten)]
    pub delivery: DeliveryArgs,

    /// Python interpreter for Wove callables.
    #[arg(long, env = "WOVE_WORKER_PYTHON", default_value = RunnerSettings::default().python, value_name = "PATH")]
    pub python: String,

    /// Seconds task_started may take (it never delays the task).
    #[arg(long, env = "WOVE_WORKER_STARTED_BUDGET", default_value = shown_seconds(DeliveryConfig::default().started_budget), value_name = "SECS", value_parser = seconds)]
    pub started_budget: Duration,

    /// Heartbeat period in seconds [default: a third of the payload's
    /// delivery_heartbeat_seconds; none when that is unset].
    #[arg(long, env = "WOVE_WORKER_HEARTBEAT_INTERVAL", value_name = "SECS", value_parser = seconds)]
    pub heartbeat_interval: Option<Duration>,

    /// Seconds between TERM and KILL when a task is stopped (at most half the
    /// shutdown budget when SIGTERM stopped it).
    #[arg(long, env = "WOVE_WORKER_KILL_GRACE", default_value = shown_seconds(RunnerSettings::default().kill_grace), value_name = "SECS", value_parser = seconds)]
    pub kill_grace: Duration,

    /// Seconds from SIGTERM/SIGINT to exit: grace, kill and the final event all fit in it.
    #[arg(long, env = vars::SHUTDOWN_BUDGET, default_value = shown_seconds(crate::config::DEFAULT_SHUTDOWN_BUDGET), value_name = "SECS", value_parser = seconds)]
    pub shutdown_budget: Duration,

    /// Where to write the outcome summary (only if the file exists, as Kubernetes makes it).
    #[arg(long, env = "WOVE_WORKER_TERMINATION_LOG", default_value = crate::config::DEFAULT_TERMINATION_LOG, value_name = "PATH")]
    pub termination_log: PathBuf,

    /// The memory cgroup used to recognise OOM kills: its directory, or its
    /// memory.events (cgroup v2) or memory.oom_control (v1) file [default: this
    /// process's, found from /proc/self/cgroup].
    #[arg(long, alias = "memory-events", env = "WOVE_WORKER_MEMORY_CGROUP", value_name = "PATH")]
    pub memory_cgroup: Option<PathBuf>,

    /// Bytes kept from the start and from the end of each output stream for error reports.
    #[arg(long, env = "WOVE_WORKER_OUTPUT_KEEP", default_value_t = RunnerSettings::default().output_keep, value_name = "BYTES")]
    pub output_keep: usize,

    /// Directories searched for runner executables (wove-runner-NAME), separated
    /// by ':' [default: PATH].
    #[arg(long, env = "WOVE_WORKER_RUNNER_PATH", value_name = "DIRS")]
    pub runner_path: Option<String>,

    /// Seconds a runner executable may run when its task sets no timeout_seconds [default: no limit].
    #[arg(long, env = "WOVE_WORKER_RUNNER_TIMEOUT", value_name = "SECS", value_parser = seconds)]
    pub runner_timeout: Option<Duration>,

    /// Run tasks as this user, UID or UID:GID (numbers; the group defaults to
    /// the UID). The worker must run as root; a task then cannot read the
    /// worker's memory or a secret file only root may read.
    #[arg(long, env = "WOVE_WORKER_TASK_USER", value_name = "UID[:GID]")]
    pub task_user: Option<crate::config::TaskUser>,

    /// A directory whose precompiled `.cwasm` modules may be loaded (repeat, or
    /// separate with ':'). Loading one runs its machine code: a `.cwasm`
    /// anywhere else, or one the worker's user can write, is refused.
    #[arg(long = "precompiled-dir", env = "WOVE_WORKER_PRECOMPILED_DIR", value_name = "DIR", value_delimiter = ':')]
    pub precompiled_dirs: Vec<PathBuf>,

    /// Directory for per-task scratch files [default: $TMPDIR or /tmp].
    #[arg(long, env = "WOVE_WORKER_WORK_DIR", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, env = "WOVE_WORKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, env = "WOVE_WORKER_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Commands other than running a payload.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the runners a payload may name here: the built-in ones, and the
    /// runner executables (wove-runner-NAME) found on the runner path.
    Runners {
        /// Directories searched, separated by ':' [default: PATH].
        #[arg(long, env = "WOVE_WORKER_RUNNER_PATH", value_name = "DIRS")]
        runner_path: Option<String>,
    },
    /// Compile a WebAssembly module or component to a `.cwasm` that this
    /// same binary loads without compiling (exit 0; 65 invalid module; 78 unreadable or unwritable path).
    #[cfg(feature = "wasm")]
    Precompile {
        /// The `.wasm` module or component.
        input: PathBuf,
        /// Where to write the `.cwasm`.
        output: PathBuf,
    },
    /// Print a shell completion script to stdout, e.g.
    /// `wove-worker completions bash > /usr/share/bash-completion/completions/wove-worker`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (wove-worker.1 and one per subcommand) into DIR.
    Manpages {
        /// The directory, made if missing.
        dir: PathBuf,
    },
}

fn after_help() -> String {
    format!("{PAYLOAD_HELP}\n\n{}", crate::exit::EXIT_CODES_HELP)
}

/// A positive number of bytes.
fn bytes(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a positive number of bytes")),
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The signing or delivery flags cannot work (a secret file, a secret, the backoff).
    #[error(transparent)]
    Delivery(#[from] ArgsError),
    /// The payload URL, its digest or its size cannot be used.
    #[error(transparent)]
    PayloadRef(#[from] RefError),
    /// `--memory-cgroup` names neither a cgroup directory nor one of its counter files.
    #[error("--memory-cgroup {}: not a cgroup directory, memory.events or memory.oom_control", .0.display())]
    MemoryCgroup(PathBuf),
    /// `--task-user` is set, but the worker cannot switch users.
    #[error("--task-user needs the worker to run as root (it switches each task to that user)")]
    TaskUserNeedsRoot,
}

impl Cli {
    /// The payload URL with its digest and size, checked; its secret parts
    /// (a presigned URL's query) known to the scrubber from here on.
    fn payload_reference(&self) -> Result<Option<PayloadRef>, ConfigError> {
        let given = |v: &Option<String>| v.as_deref().is_some_and(|t| !t.trim().is_empty());
        let Some(url) = self.payload_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            if given(&self.payload_sha256) {
                return Err(RefError::Orphan { var: vars::PAYLOAD_SHA256 }.into());
            }
            if given(&self.payload_size) {
                return Err(RefError::Orphan { var: vars::PAYLOAD_SIZE }.into());
            }
            return Ok(None);
        };
        let reference = PayloadRef::parse(
            url,
            self.payload_sha256.as_deref(),
            self.payload_size.as_deref(),
            self.payload_allow_http,
            crate::payload_fetch::HAS_S3,
        )?;
        for secret in reference.secrets() {
            crate::redact::register(&secret);
        }
        Ok(Some(reference))
    }

    /// Validate flags and read secrets. `env_secret` and `env_payload` are
    /// `WOVE_WORKER_SIGNING_SECRET` and `WOVE_BACKEND_PAYLOAD`, passed in so
    /// this function does not read the process environment itself.
    pub fn into_config(self, env_secret: Option<String>, env_payload: Option<String>) -> Result<Config, ConfigError> {
        let (signing, texts) = self.delivery.signing(env_secret.as_deref())?;
        let policy = self.delivery.policy()?;
        // Known from here on: no log line, event or termination message may quote them.
        for text in &texts {
            crate::redact::register(text);
            crate::redact::register(text.strip_prefix("whsec_").unwrap_or_default());
        }

        let reference = self.payload_reference()?;
        let payload = match (self.payload_file, self.payload, reference, env_payload) {
            (Some(path), _, _, _) => PayloadSource::File(path),
            (None, Some(arg), _, _) => PayloadSource::Argument(arg),
            (None, None, Some(reference), _) => PayloadSource::Url(reference),
            (None, None, None, Some(env)) if !env.is_empty() => PayloadSource::Env(env),
            _ => PayloadSource::Missing,
        };

        // What a flag gives is never also read from the machine.
        Ok(Config {
            payload,
            max_payload_bytes: self.max_payload_bytes,
            read_timeout: self.read_timeout,
            index: self.index.map(crate::task_index::TaskIndex::flag),
            delivery: DeliveryConfig {
                attempt_timeout: policy.attempt_timeout,
                budget: self.delivery.delivery_budget,
                started_budget: self.started_budget,
                backoff_base: policy.backoff.base,
                backoff_cap: policy.backoff.cap,
                heartbeat_interval: self.heartbeat_interval,
            },
            signing,
            runner: RunnerSettings {
                python: self.python,
                kill_grace: self.kill_grace,
                output_keep: self.output_keep,
                work_dir: self.work_dir.unwrap_or_else(RunnerSettings::detect_work_dir),
                scrub_env: RunnerSettings::default().scrub_env,
                adopt_orphans: true,
                memory_cgroup: match &self.memory_cgroup {
                    Some(path) => Some(
                        crate::cgroup::MemoryCgroup::from_path(path)
                            .ok_or_else(|| ConfigError::MemoryCgroup(path.clone()))?,
                    ),
                    None => RunnerSettings::detect_memory_cgroup(),
                },
                runner_path: self
                    .runner_path
                    .as_deref()
                    .map_or_else(RunnerSettings::detect_runner_path, crate::config::split_path),
                runner_timeout: self.runner_timeout,
                task_user: match self.task_user {
                    Some(_) if !nix::unistd::geteuid().is_root() => return Err(ConfigError::TaskUserNeedsRoot),
                    user => user,
                },
                precompiled_dirs: self.precompiled_dirs,
                limits: TaskLimits {
                    args: self.max_task_args,
                    env: self.max_task_env,
                    string_bytes: self.max_task_string_bytes,
                    result_bytes: self.max_result_bytes,
                    wasm_module_bytes: self.max_wasm_module_bytes as u64,
                },
            },
            print_events: self.print_events,
            shutdown_budget: self.shutdown_budget,
            termination_log: Some(self.termination_log),
            ca_bundle: self.delivery.ca_bundle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_shared_contract() {
        assert_eq!(hermetic(&[]).shutdown_budget, crate::config::DEFAULT_SHUTDOWN_BUDGET);
    }

    /// The flags alone: no environment variable of the machine running the test is read.
    fn hermetic(args: &[&str]) -> Cli {
        use clap::FromArgMatches as _;
        let command = Cli::command().mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(std::iter::once("wove-worker").chain(args.iter().copied())).unwrap();
        Cli::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn parsing_no_flags_is_the_default_config_on_this_machine() {
        let parsed = hermetic(&[]).into_config(None, None).unwrap();
        let expected = Config { runner: RunnerSettings::detect(), ..Config::new(PayloadSource::Missing) };
        assert_eq!(format!("{parsed:#?}"), format!("{expected:#?}"));
        // And the test can tell: one flag away from the defaults is another config.
        let changed = hermetic(&["--kill-grace", "3"]).into_config(None, None).unwrap();
        assert_ne!(format!("{changed:#?}"), format!("{expected:#?}"));
    }

    #[test]
    fn seconds_are_positive_numbers() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("inf").is_err());
    }

    #[test]
    fn payload_sources_in_order() {
        let cli =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("wove-worker").chain(args.iter().copied())).unwrap();
        let cfg = cli(&["--payload-file", "p.json", "ARG"]).into_config(None, Some("ENV".into())).unwrap();
        assert_eq!(cfg.payload, PayloadSource::File("p.json".into()));
        let cfg = cli(&["ARG"]).into_config(None, Some("ENV".into())).unwrap();
        assert_eq!(cfg.payload, PayloadSource::Argument("ARG".into()));
        let cfg = cli(&[]).into_config(None, Some("ENV".into())).unwrap();
        assert_eq!(cfg.payload, PayloadSource::Env("ENV".into()));
        let cfg = cli(&[]).into_config(None, None).unwrap();
        assert_eq!(cfg.payload, PayloadSource::Missing);
        // A URL comes after a file and an argument, before the inline variable.
        let sha = "ab".repeat(32);
        let cfg = cli(&["--payload-url", "https://h.example/k?X-Amz-Signature=s3cr3tsig", "--payload-sha256", &sha])
            .into_config(None, Some("ENV".into()))
            .unwrap();
        assert!(matches!(&cfg.payload, PayloadSource::Url(r) if r.shown() == "https://h.example/k?…"));
        assert_eq!(crate::redact::scrub("sig=s3cr3tsig"), format!("sig={}", crate::redact::REDACTED));
        let cfg =
            cli(&["ARG", "--payload-url", "https://h/k", "--payload-sha256", &sha]).into_config(None, None).unwrap();
        assert_eq!(cfg.payload, PayloadSource::Argument("ARG".into()));
    }

    #[test]
    fn a_payload_url_needs_its_digest_and_a_digest_its_url() {
        let cli =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("wove-worker").chain(args.iter().copied())).unwrap();
        let err = cli(&["--payload-url", "https://h/k"]).into_config(None, None).unwrap_err();
        assert!(err.to_string().contains(wove_proto::env::PAYLOAD_SHA256), "{err}");
        let s3 = cli(&["--payload-url", "s3://b/k", "--payload-sha256", &"ab".repeat(32)]).into_config(None, None);
        if crate::payload_fetch::HAS_S3 {
            assert!(matches!(s3.unwrap().payload, PayloadSource::Url(_)));
        } else {
            // A build without the S3 client says so at start, not at the first fetch.
            assert!(s3.unwrap_err().to_string().contains("feature `s3`"));
        }
        let err = cli(&["--payload-sha256", &"ab".repeat(32)]).into_config(None, None).unwrap_err();
        assert!(err.to_string().contains("is set but"), "{err}");
        let err = cli(&["--payload-url", "http://h/k", "--payload-sha256", &"ab".repeat(32)])
            .into_config(None, None)
            .unwrap_err();
        assert!(err.to_string().contains("AWS_ALLOW_HTTP"), "{err}");
    }

    #[test]
    fn secrets_are_split_and_checked() {
        let cli =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("wove-worker").chain(args.iter().copied())).unwrap();
        let cfg = cli(&[]).into_config(Some("a  b\nc".into()), None).unwrap();
        assert_eq!(cfg.signing.secrets.len(), 3);
        let err =
            cli(&["--signing-scheme", "standard-webhooks"]).into_config(Some("whsec_!!".into()), None).unwrap_err();
        assert!(err.to_string().contains("#1"), "{err}");
        assert!(matches!(
            cli(&["--require-signing"]).into_config(None, None),
            Err(ConfigError::Delivery(ArgsError::MissingSecret))
        ));
    }
}
