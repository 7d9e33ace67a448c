//! Against real AWS Batch: submit an example payload, wait for it, clean up.
//! Run with credentials (the standard chain), a queue and a job definition
//! whose image holds `wove-worker` and `sh` (the Python flavour from `images/`):
//!
//! ```sh
//! WOVE_SUBMIT_TEST_QUEUE=my-queue WOVE_SUBMIT_TEST_JOB_DEFINITION=wove-worker:1 \
//!   cargo test -p wove-submit --features aws-batch --test aws -- --ignored
//! ```
//!
//! The worker runs with `--print-events` (set as the command), so no callback
//! server has to be reachable from the compute environment.

use std::time::Duration;

use wove_submit::batch::{self, BatchClient, BatchOptions};
use wove_submit::EncodedPayload;

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs AWS credentials"]
async fn an_example_payload_runs_to_success_on_aws_batch() {
    let queue = std::env::var("WOVE_SUBMIT_TEST_QUEUE").expect("set WOVE_SUBMIT_TEST_QUEUE");
    let definition = std::env::var("WOVE_SUBMIT_TEST_JOB_DEFINITION").expect("set WOVE_SUBMIT_TEST_JOB_DEFINITION");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/payloads/subprocess-echo.json"))
            .unwrap();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let text = text.replace("0123456789abcdef0123456789abcdef", &format!("{nonce:032x}"));
    let mut options = BatchOptions::new(queue, definition);
    options.command = Some(vec!["wove-worker".into(), "--print-events".into()]);
    let request = batch::render(&EncodedPayload::from_text(&text).unwrap(), &options).unwrap();

    let client = BatchClient::connect(None, None).await;
    let submitted = client.submit(&request).await.unwrap();
    assert!(submitted.created);
    let again = client.submit(&request).await.unwrap();
    assert_eq!((again.job_id.as_str(), again.created), (submitted.job_id.as_str(), false));
    let report = client.wait(&submitted.job_id, Duration::from_secs(1800)).await.unwrap();
    assert_eq!((report.status.as_str(), report.exit_code), ("SUCCEEDED", Some(0)), "{report:?}");
}
