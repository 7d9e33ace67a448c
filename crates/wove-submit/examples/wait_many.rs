//! Wait on many Jobs at once with one client, as a service watching its
//! submissions would, for a fixed time; print how many ended.
//!
//! ```text
//! wait_many KUBECONFIG NAMESPACE SECONDS NAME...
//! ```
//!
//! `scripts/bench-cluster` runs it on the v1.37.2 control plane and counts,
//! in the API server's audit log, the requests it made per minute.

use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use wove_submit::kubernetes::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kubeconfig, namespace, seconds, names @ ..] = args.as_slice() else {
        eprintln!("usage: wait_many KUBECONFIG NAMESPACE SECONDS NAME...");
        std::process::exit(64);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a whole number");
    let client = Client::connect(Some(Path::new(kubeconfig)), None).await.expect("a usable kubeconfig");
    let waits = names.iter().map(|name| client.wait(namespace, name, Duration::from_secs(seconds)));
    let ended = join_all(waits).await.into_iter().filter(Result::is_ok).count();
    println!("{}", serde_json::json!({"jobs": names.len(), "ended": ended, "seconds": seconds}));
}
