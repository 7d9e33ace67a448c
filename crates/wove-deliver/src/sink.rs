//! Posting one event with retries until it is delivered, refused, or out of time.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::budget::Budget;
use crate::redact::redact_url;
use crate::reply;
use crate::requests::Requests;
use crate::retry::{next_delay, Backoff, Verdict};

/// How one event is posted: each attempt's limit and the waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Limit on one HTTP attempt (connect, send, response).
    pub attempt_timeout: Duration,
    /// The waits between attempts.
    pub backoff: Backoff,
}

/// Default total time the final event may take, retries included (`--delivery-budget`).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(300);

impl Default for Policy {
    /// The worker's defaults: 10 s per attempt, waits from 0.5 s doubling up to 30 s.
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) },
        }
    }
}

/// Drop a reply's body after at most [`reply::MAX_BODY_BYTES`] of it; whatever
/// is past that is never buffered.
async fn skim(mut response: reqwest::Response) {
    let mut skim = reply::Skim::default();
    while skim.wants_more() {
        match response.chunk().await {
            Ok(Some(chunk)) => skim.took(chunk.len()),
            _ => break,
        }
    }
}

/// How a delivery went when it worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Attempts made, from 1.
    pub attempts: u32,
    /// The accepting status (0 when printed instead of posted).
    pub status: u16,
}

/// Why an event was not delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The receiver answered with a status retrying cannot fix.
    #[error("receiver refused the event with HTTP {status} after {attempts} attempt(s)")]
    Rejected {
        /// The status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The budget ran out.
    #[error("delivery budget exhausted after {attempts} attempt(s); last error: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure, without the URL.
        last: String,
    },
    /// The receiver's TLS certificate is not trusted. Retrying cannot fix
    /// that: the worker needs the receiver's CA (`--ca-bundle`).
    #[error("the receiver's TLS certificate is not trusted ({detail}); give its CA with --ca-bundle")]
    Untrusted {
        /// What the TLS library said, without the URL.
        detail: String,
    },
    /// The URL says `https` but the receiver answered the handshake with
    /// something that is not TLS (a plain HTTP port). Retrying cannot fix it.
    #[error("the receiver does not speak TLS on that port ({detail}): the callback URL's scheme or port is wrong")]
    NotTls {
        /// What the TLS library said, without the URL.
        detail: String,
    },
}

/// Posts events to the callback URL.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    redacted: String,
    attempt_timeout: Duration,
    backoff: Backoff,
}

/// The client could not be built or the URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The callback URL does not parse.
    #[error("callback_url is not a valid URL")]
    Url,
    /// The HTTP client failed to initialise (TLS roots, …).
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The CA bundle could not be used, or TLS could not be set up.
    #[error(transparent)]
    Setup(#[from] crate::client::ClientError),
}

impl HttpSink {
    /// A sink for `callback_url`, naming itself `user_agent`.
    pub fn new(
        callback_url: &str,
        policy: &Policy,
        ca_bundle: Option<&std::path::Path>,
        user_agent: &str,
    ) -> Result<Self, SinkError> {
        let url = reqwest::Url::parse(callback_url).map_err(|_| SinkError::Url)?;
        let client = crate::client::builder(ca_bundle, user_agent)?
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.attempt_timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| SinkError::Client(e.without_url()))?;
        Ok(Self {
            client,
            redacted: redact_url(callback_url),
            url,
            attempt_timeout: policy.attempt_timeout,
            backoff: policy.backoff,
        })
    }

    /// The URL with its token hidden, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// Post `body` until delivered, refused, or `deadline` passes. A
    /// deadline that moves earlier (the worker's, on SIGTERM) cuts a running
    /// attempt or wait short.
    pub async fn deliver(
        &self,
        kind: &str,
        event_id: &str,
        body: Bytes,
        requests: &Requests,
        deadline: &impl Budget,
    ) -> Result<Delivered, DeliveryError> {
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            if deadline.passed() {
                return Err(DeliveryError::Exhausted { attempts, last });
            }
            attempts += 1;
            let mut request =
                self.client.post(self.url.clone()).timeout(self.attempt_timeout.min(deadline.remaining()));
            // Every header comes from the one definition of the request, Content-Length included.
            for (name, value) in requests.headers(event_id, &body) {
                request = request.header(name, value);
            }
            let sent = tokio::select! {
                sent = request.body(body.clone()).send() => sent,
                _ = deadline.reached() => {
                    last = format!("{last}; attempt {attempts} cut short by the deadline");
                    return Err(DeliveryError::Exhausted { attempts, last });
                }
            };
            let retry_after = match sent {
                Ok(response) => {
                    let head = reply::Head::read(
                        response.status().as_u16(),
                        response.headers().get(reqwest::header::RETRY_AFTER).map(|v| v.as_bytes()),
                        SystemTime::now(),
                    );
                    let (status, retry_after) = (head.status, head.retry_after);
                    // A short reply is read so the connection can be reused; a long or endless
                    // one is dropped unread, and its connection with it.
                    let _ = tokio::time::timeout(reply::BODY_READ.min(deadline.remaining()), skim(response)).await;
                    match head.verdict {
                        Verdict::Delivered => return Ok(Delivered { attempts, status }),
                        Verdict::Permanent => {
                            tracing::error!(event = kind, event_id, status, url = %self.redacted, "receiver refused the event; not retrying");
                            return Err(DeliveryError::Rejected { status, attempts });
                        }
                        Verdict::Retry => {
                            last = format!("HTTP {status}");
                            retry_after
                        }
                    }
                }
                Err(e) => {
                    let e = e.without_url();
                    match tls_failure(&e) {
                        Some(TlsFailure::Untrusted(detail)) => return Err(DeliveryError::Untrusted { detail }),
                        Some(TlsFailure::NotTls(detail)) => return Err(DeliveryError::NotTls { detail }),
                        None => {}
                    }
                    // reqwest puts the URL (and so the token) in its errors: stripped above.
                    last = wove_proto::error_chain(&e);
                    None
                }
            };
            let delay = next_delay(retry_after, &self.backoff, attempts, deadline.remaining());
            tracing::warn!(
                event = kind, event_id, attempt = attempts, error = %last, retry_in = ?delay, url = %self.redacted,
                "delivery attempt failed"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = deadline.reached() => {}
            }
        }
    }
}

/// TLS failures that retrying cannot fix, in the TLS library's words.
enum TlsFailure {
    /// The certificate is not trusted.
    Untrusted(String),
    /// What came back is not TLS at all.
    NotTls(String),
}

fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_) => Some(TlsFailure::Untrusted(tls.to_string())),
                // A plain HTTP server answers a ClientHello with "HTTP/1.1 400": not a TLS record.
                rustls::Error::InvalidMessage(_) => Some(TlsFailure::NotTls(tls.to_string())),
                _ => None,
            };
        }
        // hyper nests the TLS error in io::Errors, whose `source` skips the
        // error they wrap: step into the wrapped one instead.
        current = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}
