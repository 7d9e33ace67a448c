//! Submit N tasks the two ways a service can: one many-task payload as one
//! job, or N single-task payloads as N jobs (16 submits in flight, as a
//! service would), and print how long it took.
//!
//! ```text
//! submit_many kubernetes one|each N CALLBACK_URL KUBECONFIG
//! submit_many batch      one|each N CALLBACK_URL JOB_QUEUE JOB_DEFINITION
//! ```
//!
//! `scripts/measure-fan-out` runs it against the emulated Kubernetes API and
//! moto, counts the requests each server saw, and prints them side by side.

use std::time::Instant;

use futures_util::stream::{self, StreamExt as _};
use wove_submit::{batch, kubernetes, EncodedPayload};

/// Submits in flight at once in `each` mode.
const IN_FLIGHT: usize = 16;

fn task(i: usize) -> serde_json::Value {
    serde_json::json!({"runner": "subprocess", "program": "sh", "args": ["-c", "cat > \"$WOVE_RESULT_FILE\""], "input": {"n": i}})
}

/// One payload holding all `n` tasks.
fn one(n: usize, callback: &str) -> EncodedPayload {
    let tasks: Vec<_> =
        (0..n).map(|i| serde_json::json!({"task_id": format!("square-{i}"), "task": {"input": {"n": i}}})).collect();
    let mut shared = task(0);
    shared.as_object_mut().map(|t| t.remove("input"));
    let text = serde_json::json!({"version": 1, "callback_url": callback, "run_id": "square:fan-out", "task": shared, "tasks": tasks});
    EncodedPayload::from_text(&text.to_string()).expect("a valid payload")
}

/// `n` payloads of one task each.
fn each(n: usize, callback: &str) -> Vec<EncodedPayload> {
    (0..n)
        .map(|i| {
            let text = serde_json::json!({"version": 1, "callback_url": callback, "run_id": format!("square-{i}:one"),
                "task_id": format!("square-{i}"), "task": task(i)});
            EncodedPayload::from_text(&text.to_string()).expect("a valid payload")
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [platform, mode, n, callback, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: submit_many kubernetes|batch one|each N CALLBACK_URL (KUBECONFIG | JOB_QUEUE JOB_DEFINITION)"
                .into(),
        );
    };
    let n: usize = n.parse()?;
    let payloads = match mode.as_str() {
        "one" => vec![one(n, callback)],
        "each" => each(n, callback),
        other => return Err(format!("mode {other:?}: one or each").into()),
    };
    let started = Instant::now();
    let jobs = match (platform.as_str(), rest) {
        ("kubernetes", [kubeconfig]) => {
            let client = kubernetes::Client::connect(Some(std::path::Path::new(kubeconfig)), None).await?;
            let options = kubernetes::JobOptions::new("local");
            let manifests = payloads.iter().map(|p| kubernetes::render(p, &options)).collect::<Result<Vec<_>, _>>()?;
            let results: Vec<_> =
                stream::iter(manifests.iter().map(|m| client.submit(m))).buffer_unordered(IN_FLIGHT).collect().await;
            results.into_iter().collect::<Result<Vec<_>, _>>()?.len()
        }
        ("batch", [queue, definition]) => {
            let client = batch::BatchClient::connect(None, None).await;
            let options = batch::BatchOptions::new(queue.as_str(), definition.as_str());
            let requests = payloads.iter().map(|p| batch::render(p, &options)).collect::<Result<Vec<_>, _>>()?;
            let results: Vec<_> =
                stream::iter(requests.iter().map(|r| client.submit(r))).buffer_unordered(IN_FLIGHT).collect().await;
            results.into_iter().collect::<Result<Vec<_>, _>>()?.len()
        }
        _ => return Err("kubernetes takes KUBECONFIG; batch takes JOB_QUEUE JOB_DEFINITION".into()),
    };
    println!("{{\"jobs\": {jobs}, \"tasks\": {n}, \"seconds\": {:.3}}}", started.elapsed().as_secs_f64());
    Ok(())
}
