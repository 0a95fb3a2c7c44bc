//! The server's connections: accepted, bounded, timed out and served by hyper (HTTP/1.1, and
//! HTTP/2 without TLS), instead of `axum::serve`, which sets no limits.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are served at once. One more is
//!   answered `503 too_many_connections` (our JSON error, `Retry-After: 1`) and closed, by a
//!   small bounded set of tasks; past those it is closed at once. File descriptors and memory
//!   stay bounded whatever a client opens.
//! - A request head must arrive within [`ConnectionLimits::header_read_timeout`], counted from
//!   the moment the connection waits for it: a client that trickles its headers one byte a second
//!   is cut off, and so is a keep-alive connection idle that long.
//! - Request heads are at most [`ConnectionLimits::max_header_bytes`] (hyper's read buffer), so a
//!   connection's memory is bounded before any handler runs.
//! - hyper answers requests it cannot parse by itself (400, 414, 431) with an empty body;
//!   [`ConnectionIo`] replaces those answers with our JSON error body, so that every answer of
//!   the server is `{"code","message"}`.
//! - A connection that accepts no byte of an answer for [`ConnectionLimits::send_timeout`] is
//!   closed ([`ConnectionIo`]): a client that stops reading gives back what it holds of the
//!   downloads' memory budget.
//! - On shutdown, the listener closes, idle connections close, in-flight requests finish.
//! - With TLS (the webhook's listener), the handshake must finish within the header read
//!   timeout too; hyper then serves the decrypted stream like a plain one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// For a request head to arrive, from the moment the connection waits for one (so also the
    /// idle keep-alive timeout).
    pub header_read_timeout: Duration,
    /// For a connection to accept any byte of an answer.
    pub send_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
        }
    }
}

/// How many connections past the limit are answered 503 at once; more are closed unanswered.
const REFUSING_AT_ONCE: usize = 64;

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets in-flight
/// requests finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_tls(listener, app, limits, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was accepted: say
                    // so, wait a moment (a tight loop would spin on EMFILE), go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "too many connections; refused");
            if let Ok(refusal) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, limits.max_connections).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => serve_one(&builder, stream, service, watcher, limits).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            serve_one(&builder, stream, service, watcher, limits).await
                        }
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err("the TLS handshake did not finish in time".into()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves one connection's requests (plain, or the decrypted side of TLS) until it ends or the
/// server shuts down.
async fn serve_one<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ConnectionLimits,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(ConnectionIo::new(io, limits.send_timeout));
    let connection = builder.serve_connection_with_upgrades(io, service);
    watcher.watch(connection.into_owned()).await
}

/// Answers a connection past the limit with our 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, limit: usize) {
    let answer = ApiError::TooManyConnections(limit).to_http1_bytes();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

/// A connection's I/O: replaces hyper's own answers to requests it cannot parse (a 400, 414 or
/// 431 head with `content-length: 0`, which our handlers never send: their errors carry a JSON
/// body) with the same status and our JSON error body, and fails a write that makes no progress
/// for the send timeout.
pub struct ConnectionIo<T> {
    io: T,
    /// Bytes to write before anything else, and how many are written.
    pending: Option<(Vec<u8>, usize)>,
    send_timeout: Duration,
    /// Armed while a write waits for the peer.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> ConnectionIo<T> {
    pub fn new(io: T, send_timeout: Duration) -> Self {
        Self {
            io,
            pending: None,
            send_timeout,
            stalled: None,
        }
    }
}

/// Our answer in place of hyper's automatic `head`, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let status = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let error = match status.get(..4)? {
        b"400 " => ApiError::BadHttp,
        b"414 " => ApiError::UriTooLong,
        b"431 " => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let lower = head.to_ascii_lowercase();
    let empty = lower.windows(21).any(|w| w == b"\r\ncontent-length: 0\r\n");
    (empty && lower.ends_with(b"\r\n\r\n")).then(|| error.to_http1_bytes())
}

impl<T: AsyncWrite + Unpin> ConnectionIo<T> {
    /// `polled`, the outcome of a write: pending too long is an error; a write that is done
    /// disarms.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client accepted nothing for {timeout:?}"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let polled = Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]);
            let n = ready!(self.watch(cx, polled))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, written)) = &mut self.pending {
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnectionIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnectionIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(ours) = replacement(buf) {
            self.pending = Some((ours, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (nonempty.next(), nonempty.next())
            && let Some(ours) = replacement(only)
        {
            self.pending = Some((ours, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(only.len()));
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        if polled.is_ready() {
            // A socket's flush is done at once, whatever the peer reads: only bytes written
            // count as progress, or a stalled write would start its timeout over at every flush.
            return polled;
        }
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let ours = replacement(hyper_431).expect("replaced");
        let text = String::from_utf8(ours).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        // Our own answers carry a body, and other statuses are never touched.
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 57\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
