//! The worker embedded as a library, with a user's runner registered beside the built-ins.
//!
//! A test binary of its own, so its children are only the ones these tests make.

mod support;

use std::time::Duration;

use wove_worker::config::{Config, PayloadSource, RunnerSettings};
use wove_worker::exit::Exit;
use wove_worker::proto::{ErrorInfo, Payload, PayloadError};
use wove_worker::runner::{BoxFuture, Context, Finished, Outcome, Prepared, Registry, Runner, TaskValue};
use wove_worker::worker::Worker;

use support::{b64, payload, Receiver, Reply, TOKEN};

struct Shout;
struct ShoutTask(String);

impl Runner for Shout {
    fn name(&self) -> &str {
        "shout"
    }
    fn prepare(&self, payload: &Payload, _: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        #[derive(serde::Deserialize)]
        struct Fields {
            text: String,
        }
        let fields: Fields = payload.task.as_ref().unwrap().decode()?;
        Ok(Box::new(ShoutTask(fields.text)))
    }
}

impl Prepared for ShoutTask {
    fn run(self: Box<Self>, _: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move {
            if self.0.is_empty() {
                return Outcome::failed(ErrorInfo::task("EmptyText", "nothing to shout")).into();
            }
            Outcome::Succeeded(TaskValue::Json(self.0.to_uppercase().into())).into()
        })
    }
}

/// A runner with a bug: it panics while it runs.
struct Buggy;
struct BuggyTask;

impl Runner for Buggy {
    fn name(&self) -> &str {
        "buggy"
    }
    fn prepare(&self, _: &Payload, _: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        Ok(Box::new(BuggyTask))
    }
}

impl Prepared for BuggyTask {
    fn run(self: Box<Self>, _: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move {
            let index: Vec<u8> = Vec::new();
            // Out of bounds: the kind of bug a runner has, not a deliberate `panic!`.
            let value = index[std::hint::black_box(3)];
            Outcome::Succeeded(TaskValue::Json(value.into())).into()
        })
    }
}

fn run_worker(task: serde_json::Value, rx: &Receiver) -> Exit {
    let mut config = Config::new(PayloadSource::Env(b64(&payload(&rx.url(TOKEN), task))));
    // This test process has children of its own (other tests' receivers are threads,
    // but nothing here may be swept as an orphan).
    config.runner = RunnerSettings { adopt_orphans: false, ..RunnerSettings::default() };
    config.termination_log = None;
    config.delivery.budget = Duration::from_secs(10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(Worker::new(config, Registry::builtin().register(Shout).register(Buggy)).run())
}

#[test]
fn a_registered_runner_runs_like_a_builtin() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    assert_eq!(run_worker(serde_json::json!({"runner": "shout", "text": "hi"}), &rx), Exit::Success);
    assert_eq!(rx.of_type("task_result")[0].json()["result"], "HI");

    let rx = Receiver::start(vec![Reply::Status(204)]);
    assert_eq!(run_worker(serde_json::json!({"runner": "shout", "text": ""}), &rx), Exit::TaskFailed);
    assert_eq!(rx.of_type("task_error")[0].json()["error"]["kind"], "EmptyText");

    let rx = Receiver::start(vec![Reply::Status(204)]);
    assert_eq!(run_worker(serde_json::json!({"runner": "shout", "txt": "x"}), &rx), Exit::BadPayload);
    assert!(rx.of_type("task_error")[0].json()["error"]["message"].as_str().unwrap().contains("text"));
}

/// The promise `panic = "unwind"` buys (docs/building.md): a runner's panic is the task's
/// failure, reported as the final event, never the end of the worker without one.
#[test]
fn a_runner_that_panics_is_reported_as_its_tasks_failure() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    assert_eq!(run_worker(serde_json::json!({"runner": "buggy"}), &rx), Exit::TaskFailed);
    let errors = rx.of_type("task_error");
    assert_eq!(errors.len(), 1);
    let error = &errors[0].json()["error"];
    assert_eq!(error["kind"], "WorkerPanic", "{error}");
    assert!(error["message"].as_str().unwrap().contains("panicked"), "{error}");
    assert!(rx.of_type("task_result").is_empty());
}

/// The shipped binaries keep that promise: every profile scripts/build-static builds the
/// worker with, and each it inherits from, unwinds, and nothing on its command line says
/// otherwise. A `panic = "abort"` put in for size fails here.
#[test]
fn the_shipped_profiles_unwind_panics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let manifest: toml_edit::DocumentMut = text.parse().unwrap();
    let build = std::fs::read_to_string(format!("{root}/scripts/build-static")).unwrap();
    for shipped in ["static", "static-symbols"] {
        assert!(build.contains(&format!("profile={shipped}")), "scripts/build-static no longer builds `{shipped}`");
        let mut profile = shipped.to_string();
        let mut read = Vec::new();
        loop {
            let table = manifest.get("profile").and_then(|p| p.get(&profile));
            // Cargo's own release and dev profiles unwind unless a table says otherwise.
            let Some(table) = table else {
                assert!(matches!(profile.as_str(), "release" | "dev"), "no [profile.{profile}]");
                break;
            };
            let panic = table.get("panic").and_then(|p| p.as_str());
            assert!(matches!(panic, None | Some("unwind")), "[profile.{profile}] sets panic = {panic:?}");
            read.push(profile.clone());
            match table.get("inherits").and_then(|i| i.as_str()) {
                Some(parent) => profile = parent.to_string(),
                None => break,
            }
        }
        assert!(read.len() >= 2, "{shipped} read no inherited profile: {read:?}");
    }
    for script in ["scripts/build-static", "scripts/static-env"] {
        let text = std::fs::read_to_string(format!("{root}/{script}")).unwrap();
        assert!(!text.contains("panic=abort") && !text.contains("_PANIC"), "{script} changes how panics end");
    }
}

#[test]
fn builtins_still_resolve_beside_a_custom_runner() {
    let registry = Registry::builtin().register(Shout);
    let names: Vec<_> = registry.names().collect();
    for name in ["python", "shout", "subprocess"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert_eq!(names.contains(&"wasm"), cfg!(feature = "wasm-runtime"));
}

#[test]
fn an_embedded_worker_leaves_the_hosts_own_children_alone() {
    // The host has a child of its own, which ends while the worker runs a task.
    let mut own = std::process::Command::new("sh").args(["-c", "sleep 0.3; exit 7"]).spawn().unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = serde_json::json!({"runner": "subprocess", "program": "sleep", "args": ["1.5"]});
    assert_eq!(run_worker(task, &rx), Exit::Success);
    // Nothing reaped it in between: the host still gets its child's status.
    let status = own.wait().expect("the host's child was reaped by someone else");
    assert_eq!(status.code(), Some(7));
}
