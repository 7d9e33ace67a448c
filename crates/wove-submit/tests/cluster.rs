//! Against a real cluster: submit an example payload, wait for it, read its
//! log, clean up. Run with a kubeconfig and an image holding `wove-worker`
//! and `sh` (the Python flavour from `images/`):
//!
//! ```sh
//! WOVE_SUBMIT_TEST_IMAGE=registry.example/wove-worker-python:0.1.0 \
//!   cargo test -p wove-submit --features kubernetes --test cluster -- --ignored
//! ```
//!
//! The worker runs with `--print-events`, so no callback server has to be
//! reachable from the cluster: its events go to the pod's log.

use std::time::Duration;

use wove_submit::kubernetes::{self, Client, JobOptions};
use wove_submit::EncodedPayload;

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a cluster"]
async fn an_example_payload_runs_to_success_on_a_real_cluster() {
    let image = std::env::var("WOVE_SUBMIT_TEST_IMAGE").expect("set WOVE_SUBMIT_TEST_IMAGE to a worker image with sh");
    let namespace = std::env::var("WOVE_SUBMIT_TEST_NAMESPACE").unwrap_or_else(|_| "default".into());
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/payloads/subprocess-echo.json"))
            .unwrap();
    // A fresh run id per test run, so reruns do not meet the last run's Job.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let text = text.replace("0123456789abcdef0123456789abcdef", &format!("{nonce:032x}"));
    let payload = EncodedPayload::from_text(&text).unwrap();
    let mut options = JobOptions::new(image).namespace(namespace.clone());
    options.args = vec!["--print-events".into()];
    let manifest = kubernetes::render(&payload, &options).unwrap();

    let client = Client::connect(None, None).await.unwrap();
    let submitted = client.submit(&manifest).await.unwrap();
    assert!(submitted.created);
    let report = client.wait(&namespace, manifest.name(), Duration::from_secs(600)).await.unwrap();
    let mut log = Vec::new();
    client.logs(&namespace, manifest.name(), &mut log).await.unwrap();
    client.cancel(&namespace, manifest.name()).await.unwrap();

    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("task_result") && log.contains("hello"), "{log}");
}
