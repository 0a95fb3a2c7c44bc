//! A fault-injecting HTTP proxy: it forwards `GET` and `HEAD` requests to an upstream origin and,
//! at a configurable rate, answers with one of the failures a pod meets on a real network
//! instead: a connection reset, a 500 or 503, a body cut short, a body that stalls.
//!
//! Whether a request fails is drawn from a seeded generator, so a failing run can be replayed
//! with its seed; the kinds of fault take turns. The
//! proxy speaks HTTP/1.1 on raw TCP (one request per connection, `Connection: close`) so that it
//! can break a response at any byte, which a well-behaved HTTP server library would not do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The connection is reset (RST) before any response.
    ResetBeforeResponse,
    /// The connection is reset partway through the body.
    ResetMidBody,
    /// `500 Internal Server Error`.
    Status500,
    /// `503 Service Unavailable` with `Retry-After: 1`.
    Status503,
    /// The full `Content-Length` is announced, part of the body sent, then the connection closed.
    Truncate,
    /// Part of the body is sent, then nothing for [`FaultConfig::stall`], then the connection
    /// is closed.
    Stall,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::ResetBeforeResponse,
        Fault::ResetMidBody,
        Fault::Status500,
        Fault::Status503,
        Fault::Truncate,
        Fault::Stall,
    ];

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|f| *f == self)
            .unwrap_or_default()
    }
}

/// Which faults, how often.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// The share of requests that fail, from 0.0 (none) to 1.0 (every one).
    pub rate: f64,
    /// The faults to inject, in turn: the n-th injected fault is `faults[n % len]`, so that a
    /// run with a few faults meets every kind.
    pub faults: Vec<Fault>,
    /// How long a [`Fault::Stall`] keeps the connection silent.
    pub stall: Duration,
    /// Only requests whose target contains this are candidates for a fault.
    pub only_paths_containing: Option<String>,
    pub seed: u64,
}

impl FaultConfig {
    /// Every fault kind at `rate`.
    pub fn all(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            faults: Fault::ALL.to_vec(),
            stall: Duration::from_secs(10),
            only_paths_containing: None,
            seed,
        }
    }
}

/// What the proxy did so far.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicU64,
    pub passed: AtomicU64,
    injected: [AtomicU64; 6],
    /// Every request's method and target, in order of arrival.
    log: Mutex<Vec<(String, String)>>,
}

impl FaultStats {
    /// The method and target of every request so far.
    pub fn log(&self) -> Vec<(String, String)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How often `fault` was injected.
    pub fn injected(&self, fault: Fault) -> u64 {
        self.injected[fault.index()].load(Ordering::SeqCst)
    }

    pub fn total_injected(&self) -> u64 {
        Fault::ALL.iter().map(|f| self.injected(*f)).sum()
    }
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct FaultProxy {
    port: u16,
    pub stats: Arc<FaultStats>,
    /// The share of requests that fail now, as `f64` bits ([`FaultProxy::set_rate`]).
    rate: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    config: FaultConfig,
    rate: Arc<AtomicU64>,
    rng: Mutex<StdRng>,
    stats: Arc<FaultStats>,
    client: reqwest::Client,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, config: FaultConfig) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(FaultStats::default());
        let rate = Arc::new(AtomicU64::new(config.rate.to_bits()));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rate: Arc::clone(&rate),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
            stats: stats.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(shared, stream).await;
                });
            }
        });
        Ok(Self {
            port,
            stats,
            rate,
            task,
        })
    }

    /// From now on, `rate` of the requests fail (an origin that breaks, or recovers).
    pub fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The decision for one request: a fault (and where in the body it strikes, as a fraction), or
/// none.
fn draw(shared: &Shared, target: &str) -> Option<(Fault, f64)> {
    if let Some(part) = &shared.config.only_paths_containing
        && !target.contains(part.as_str())
    {
        return None;
    }
    let mut rng = shared.rng.lock().ok()?;
    let rate = f64::from_bits(shared.rate.load(Ordering::SeqCst));
    if shared.config.faults.is_empty() || !rng.random_bool(rate.clamp(0.0, 1.0)) {
        return None;
    }
    let turn = shared.stats.total_injected() as usize;
    let fault = shared.config.faults[turn % shared.config.faults.len()];
    Some((fault, rng.random_range(0.0..0.9)))
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream) -> Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return Ok(());
    };
    shared.stats.requests.fetch_add(1, Ordering::SeqCst);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    if let Ok(mut log) = shared.stats.log.lock() {
        log.push((method.clone(), target.clone()));
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();

    let fault = draw(&shared, &target);
    if let Some((fault, _)) = fault {
        shared.stats.injected[fault.index()].fetch_add(1, Ordering::SeqCst);
    } else {
        shared.stats.passed.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Some((Fault::ResetBeforeResponse, _)) => return reset(stream),
        Some((Fault::Status500, _)) => {
            return respond_error(stream, "500 Internal Server Error", "").await;
        }
        Some((Fault::Status503, _)) => {
            return respond_error(stream, "503 Service Unavailable", "Retry-After: 1\r\n").await;
        }
        _ => {}
    }

    let method = match method.as_str() {
        "GET" => reqwest::Method::GET,
        "HEAD" => reqwest::Method::HEAD,
        _ => return respond_error(stream, "405 Method Not Allowed", "").await,
    };
    let mut request = shared
        .client
        .request(method, format!("{}{target}", shared.upstream));
    for (name, value) in &headers {
        let hop_by_hop = ["host", "connection", "keep-alive", "transfer-encoding"];
        if !hop_by_hop.contains(&name.to_ascii_lowercase().as_str()) {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(_) => return respond_error(stream, "502 Bad Gateway", "").await,
    };
    let length = response.content_length();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status().as_u16(),
        response.status().canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if name != "connection" && name != "transfer-encoding" && name != "keep-alive" {
            out.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes()).await?;

    // Where a body fault strikes: a fraction of the announced length.
    let cut = match fault {
        Some((Fault::ResetMidBody | Fault::Truncate | Fault::Stall, at)) => {
            Some((length.unwrap_or(0) as f64 * at) as u64)
        }
        _ => None,
    };
    let mut sent = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if let Some(cut) = cut
            && sent + chunk.len() as u64 >= cut
        {
            let keep = usize::try_from(cut - sent).unwrap_or(0);
            stream.write_all(&chunk[..keep]).await?;
            stream.flush().await?;
            return match fault {
                Some((Fault::ResetMidBody, _)) => reset(stream),
                Some((Fault::Stall, _)) => {
                    tokio::time::sleep(shared.config.stall).await;
                    Ok(())
                }
                _ => Ok(()),
            };
        }
        stream.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    stream.flush().await?;
    Ok(())
}

/// Reads up to the blank line that ends a request head; `None` when the client sent nothing.
async fn read_head(stream: &mut TcpStream) -> Result<Option<String>> {
    let mut buffer = Vec::with_capacity(2048);
    let mut byte = [0u8; 1024];
    loop {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&byte[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buffer).into_owned()));
        }
        if buffer.len() > 64 * 1024 {
            anyhow::bail!("request head too long");
        }
    }
}

/// Closes with RST: linger 0 makes the kernel abort the connection instead of a clean FIN.
fn reset(stream: TcpStream) -> Result<()> {
    stream.set_zero_linger()?;
    drop(stream);
    Ok(())
}

async fn respond_error(mut stream: TcpStream, status: &str, extra: &str) -> Result<()> {
    let body =
        format!("{{\"code\":\"injected\",\"message\":\"{status} injected by the fault proxy\"}}");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
