//! A light HTTP/1.1 load generator for the benches: keep-alive connections over loopback,
//! each a task of one current-thread runtime on its own OS thread (as `wrk -t1` does), so
//! the client costs a fraction of the server's CPU and never shares the server's runtime.
//!
//! A request is written as prepared bytes; a response is read up to its headers, its status
//! checked, and its `Content-Length` body consumed. Anything else (a closed connection, a
//! chunked answer) counts as a failure and the connection is reopened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Send `request` (a whole HTTP/1.1 request) and return the response status, or `None`
    /// when the exchange failed.
    pub(crate) async fn send(&mut self, request: &[u8]) -> Option<u16> {
        let result = self.exchange(request).await;
        if result.is_none() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> Option<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await.ok()?;
            s.set_nodelay(true).ok()?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut()?;
        stream.write_all(request).await.ok()?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).ok()?;
        let status: u16 = head.get(9..12)?.parse().ok()?;
        let length: usize = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })?;
        let mut have = self.buf.len() - head_end;
        while have < length {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            have += n;
        }
        Some(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A POST request with `headers` (each `name: value`, without line ends) and `body`.
pub(crate) fn post(path: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The value of metric `name` in the server's Prometheus text (`/metrics`); 0 when absent.
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The `p` quantile (0–1) of `sorted`, by the nearest rank; `None` when it is empty.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * p).round() as usize).copied()
}

/// What one run of [`run`] saw.
pub(crate) struct Outcome {
    /// Latency of every 2xx answer, in microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// Non-2xx answers and failed exchanges.
    pub(crate) refused: u64,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
}

/// Start `concurrency` connections to `addr` on a thread of their own. Connection `c` sends
/// `request(c, n)` for its `n`-th request until `request` returns `None`; the thread's result
/// is what they saw.
///
/// Without `interval`, each connection sends its next request as soon as the last is
/// answered. With it, request `n * concurrency + c` is not sent before `interval` times that
/// number has passed: a steady `1 / interval` requests a second, as long as the server keeps
/// up.
pub(crate) fn spawn<F>(
    addr: SocketAddr,
    concurrency: usize,
    interval: Option<Duration>,
    request: F,
) -> std::thread::JoinHandle<Outcome>
where
    F: Fn(usize, u64) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let request = std::sync::Arc::new(request);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("load generator runtime");
        rt.block_on(async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..concurrency {
                let request = std::sync::Arc::clone(&request);
                tasks.push(tokio::spawn(async move {
                    let mut conn = Conn::new(addr);
                    let mut latencies_us = Vec::with_capacity(100_000);
                    let mut refused = 0u64;
                    let mut n = 0u64;
                    while let Some(req) = request(c, n) {
                        if let Some(interval) = interval {
                            let index = n * concurrency as u64 + c as u64;
                            let due =
                                interval.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
                            tokio::time::sleep_until((started + due).into()).await;
                        }
                        n += 1;
                        let t = Instant::now();
                        match conn.send(&req).await {
                            Some(s) if (200..300).contains(&s) => latencies_us
                                .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
                            _ => refused += 1,
                        }
                    }
                    (latencies_us, refused)
                }));
            }
            let mut out = Outcome {
                latencies_us: Vec::new(),
                refused: 0,
                elapsed: Duration::ZERO,
            };
            for t in tasks {
                let (l, r) = t.await.expect("load task");
                out.latencies_us.extend(l);
                out.refused += r;
            }
            out.elapsed = started.elapsed();
            out
        })
    })
}
