//! A scripted HTTP receiver on loopback: records every request, answers from a script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with no body.
    Status(u16),
    /// A status with extra headers.
    WithHeaders(u16, Vec<(String, String)>),
    /// Close the connection without answering.
    Hangup,
    /// Start the status line, then reset the connection (RST) in the middle of it.
    ResetMidResponse,
    /// Wait this long, then answer with the status.
    Slow(Duration, u16),
    /// 200 with this body (a file server for downloads).
    Body(Vec<u8>),
    /// 200, then a body that does not end: `Content-Length` says 1 TiB (or
    /// the body is chunked), and bytes keep coming until the reader stops
    /// reading or `max` bytes have gone out. Returns how much was sent in `sent`.
    Flood { chunked: bool, max: u64, sent: Arc<AtomicUsize> },
    /// 200 with this body, one byte at a time, this far apart.
    Trickle(Vec<u8>, Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("event body is JSON")
    }

    /// Whether this is an event (a POST with a body), not a download.
    pub fn is_event(&self) -> bool {
        !self.body.is_empty()
    }
}

pub struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Receiver {
    /// Answer with `script` in order; the last reply repeats.
    pub fn start(script: Vec<Reply>) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind loopback"), script)
    }

    /// Same, on an existing listener (to come up on a port chosen earlier).
    pub fn start_on(listener: TcpListener, script: Vec<Reply>) -> Self {
        Self::start_with(listener, script, None)
    }

    /// Same, speaking TLS with this server configuration.
    pub fn start_tls(script: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(TcpListener::bind("127.0.0.1:0").expect("bind loopback"), script, Some(tls))
    }

    fn start_with(listener: TcpListener, script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        assert!(!script.is_empty());
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (reqs, stop2, count) = (requests.clone(), stop.clone(), accepted.clone());
        let script = Arc::new(Mutex::new((script, 0usize)));
        thread::spawn(move || {
            // Bounded: the test drops the receiver, or ten minutes pass.
            let until = Instant::now() + Duration::from_secs(600);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < until {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let (reqs, script, tls) = (reqs.clone(), script.clone(), tls.clone());
                        thread::spawn(move || {
                            stream.set_nonblocking(false).ok();
                            stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            let raw = stream.try_clone().unwrap();
                            match tls {
                                None => serve(stream, &raw, &reqs, &script),
                                Some(config) => {
                                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                                    serve(rustls::StreamOwned::new(conn, stream), &raw, &reqs, &script)
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, requests, stop, accepted }
    }

    pub fn url(&self, token: &str) -> String {
        format!("http://{}/wove/events/{token}", self.addr)
    }

    /// The https URL, by the name the test certificate is issued for.
    pub fn tls_url(&self, token: &str) -> String {
        self.tls_url_at("localhost", token)
    }

    /// The https URL through another host name (one the certificate also covers).
    pub fn tls_url_at(&self, host: &str, token: &str) -> String {
        format!("https://{host}:{}/wove/events/{token}", self.addr.port())
    }

    /// Connections accepted so far, complete requests or not (failed TLS handshakes count).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.requests().iter().filter(|r| r.is_event()).map(Request::json).collect()
    }

    /// Requests whose event has this `type`.
    pub fn of_type(&self, kind: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.is_event() && r.json()["type"] == kind).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve<S: Read + Write>(stream: S, raw: &TcpStream, reqs: &Mutex<Vec<Request>>, script: &Mutex<(Vec<Reply>, usize)>) {
    let mut reader = BufReader::new(stream);
    // A TLS handshake on this plain port: answer as an HTTP server does, 400 and close.
    if reader.fill_buf().is_ok_and(|b| b.first() == Some(&0x16)) {
        let mut stream = reader.into_inner();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    reqs.lock().unwrap().push(Request { path, headers, body, at: Instant::now() });
    let reply = {
        let mut s = script.lock().unwrap();
        let i = s.1.min(s.0.len() - 1);
        s.1 += 1;
        s.0[i].clone()
    };
    let mut stream = reader.into_inner();
    // HTTP/1.0 without keep-alive, as Wove's receiver answers.
    let (status, extra) = match reply {
        Reply::Hangup => return,
        Reply::ResetMidResponse => {
            let _ = stream.write_all(b"HTTP/1.0 2");
            let _ = stream.flush();
            // Linger 0: closing now sends RST instead of FIN.
            let linger = nix::libc::linger { l_onoff: 1, l_linger: 0 };
            let _ = nix::sys::socket::setsockopt(raw, nix::sys::socket::sockopt::Linger, &linger);
            return;
        }
        Reply::Slow(wait, s) => {
            thread::sleep(wait);
            (s, vec![])
        }
        Reply::Body(bytes) => {
            let _ = stream.write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()).as_bytes());
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            return;
        }
        Reply::Flood { chunked, max, sent } => {
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 40)
            };
            let _ = stream.write_all(head.as_bytes());
            let block = vec![b'x'; 64 * 1024];
            let chunk = [format!("{:x}\r\n", block.len()).into_bytes(), block.clone(), b"\r\n".to_vec()].concat();
            let frame = if chunked { &chunk } else { &block };
            // Bounded: by `max`, and by the reader, whose going away fails the write.
            while (sent.load(Ordering::Relaxed) as u64) < max {
                if stream.write_all(frame).is_err() {
                    break;
                }
                sent.fetch_add(block.len(), Ordering::Relaxed);
            }
            return;
        }
        Reply::Trickle(bytes, every) => {
            let _ = stream.write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()).as_bytes());
            for b in bytes {
                if stream.write_all(&[b]).and_then(|()| stream.flush()).is_err() {
                    break;
                }
                thread::sleep(every);
            }
            return;
        }
        Reply::Status(s) => (s, vec![]),
        Reply::WithHeaders(s, h) => (s, h),
    };
    let mut out = format!("HTTP/1.0 {status} X\r\nContent-Length: 0\r\n");
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}
