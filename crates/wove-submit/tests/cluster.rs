//! The library against Kubernetes itself: submit an example payload, wait for it, read its log,
//! cancel. `scripts/test` runs it on the v1.37.2 control plane `scripts/cluster` starts (any
//! cluster works), given its kubeconfig and an image holding `wove-worker`:
//!
//! ```sh
//! WOVE_TEST_KUBECONFIG=$(scripts/cluster start --image local | tail -1) WOVE_SUBMIT_TEST_IMAGE=local \
//!   cargo test -p wove-submit --features kubernetes --test cluster
//! ```
//!
//! Without `WOVE_TEST_KUBECONFIG` it skips, unless `WOVE_TEST_REQUIRE_CLUSTER=1` makes that a
//! failure (as in CI). The callback server is this test's, on loopback, where the node runs
//! the pod's container: use a cluster whose nodes can reach this machine.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wove_submit::kubernetes::{self, Client, JobOptions};
use wove_submit::EncodedPayload;

fn cluster() -> Option<(PathBuf, String)> {
    match std::env::var_os("WOVE_TEST_KUBECONFIG") {
        Some(path) => Some((path.into(), std::env::var("WOVE_SUBMIT_TEST_IMAGE").unwrap_or_else(|_| "local".into()))),
        None => {
            assert!(
                std::env::var_os("WOVE_TEST_REQUIRE_CLUSTER").is_none(),
                "WOVE_TEST_REQUIRE_CLUSTER is set, but WOVE_TEST_KUBECONFIG names no cluster"
            );
            eprintln!(
                "SKIPPED: no cluster (set WOVE_TEST_KUBECONFIG; WOVE_TEST_REQUIRE_CLUSTER=1 makes this a failure)"
            );
            None
        }
    }
}

/// Takes each POST's body and answers 204; the bodies, in order.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/wove/events/cluster-test-token", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(&stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[tokio::test(flavor = "current_thread")]
async fn an_example_payload_runs_to_success_on_a_real_cluster() {
    let Some((kubeconfig, image)) = cluster() else { return };
    let namespace = std::env::var("WOVE_SUBMIT_TEST_NAMESPACE").unwrap_or_else(|_| "default".into());
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/payloads/subprocess-echo.json"))
            .unwrap();
    // A fresh run id per test run, so reruns do not meet the last run's Job.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let text = text.replace("0123456789abcdef0123456789abcdef", &format!("{nonce:032x}"));
    let (callback, bodies) = receiver();
    let text = text.replace("http://127.0.0.1:9/wove/events/example-token", &callback);
    let payload = EncodedPayload::from_text(&text).unwrap();
    let options = JobOptions::new(image).namespace(namespace.clone());
    let manifest = kubernetes::render(&payload, &options).unwrap();

    let client = Client::connect(Some(kubeconfig.as_path()), None).await.unwrap();
    let submitted = client.submit(&manifest).await.unwrap();
    assert!(submitted.created);
    let report = client.wait(&namespace, manifest.name(), Duration::from_secs(120)).await.unwrap();
    let mut log = Vec::new();
    let mut notices = Vec::new();
    client.logs(&namespace, manifest.name(), &mut log, |n| notices.push(format!("{n:?}"))).await.unwrap();
    // One pod, read whole: nothing to say beside its log, and the library printed nothing itself.
    assert!(notices.is_empty(), "{notices:?}");
    client.cancel(&namespace, manifest.name()).await.unwrap();

    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("task got: {\"name\":\"world\"}"), "the task's stderr is in the pod's log: {log}");
    assert!(!log.contains("cluster-test-token"), "the callback token is never logged: {log}");
    let bodies = bodies.lock().unwrap().clone();
    let result = bodies.iter().find(|b| b.contains("\"task_result\"")).expect("task_result arrived");
    assert!(result.contains("\"greeting\":\"hello\""), "{result}");
}
