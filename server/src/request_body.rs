//! Request bodies under timeouts of their own, so that a client that stalls is answered
//! `408 body_timeout` (never blamed on the storage) on every route:
//!
//! - [`limit_idle`], a middleware for every route: a body that sends nothing for the body idle
//!   timeout fails with [`BodyError::Stalled`], which the JSON extractor's rejection and the blob
//!   upload both turn into 408; it also records in the request ([`BodyDone`]) when the body has
//!   been read to its end;
//! - the JSON calls' deadline (`crate::deadline`) answers 408 instead of 503 when it passes
//!   before the body was read to its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};
use http_body::Body as _;

/// How a request body failed before it ended.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No data arrived for this long.
    #[error("the request body sent nothing for {0:?}")]
    Stalled(Duration),
    /// The connection broke or the body was malformed.
    #[error("the request body could not be read: {0}")]
    Aborted(String),
}

impl BodyError {
    /// What an error of a body stream was: a [`BodyError`] from an inner wrapper, as it was, or
    /// the connection failing.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut source = Some(error);
        while let Some(e) = source {
            match e.downcast_ref::<BodyError>() {
                Some(Self::Stalled(d)) => return Self::Stalled(*d),
                Some(Self::Aborted(m)) => return Self::Aborted(m.clone()),
                None => source = e.source(),
            }
        }
        Self::Aborted(error.to_string())
    }
}

/// Set once the request's body has been read to its end (at once for a request without one).
#[derive(Debug, Clone)]
pub struct BodyDone(Arc<AtomicBool>);

impl BodyDone {
    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Middleware: the request's body fails with [`BodyError::Stalled`] after `idle` without data,
/// and [`BodyDone`] tells whether it has been read to its end.
pub async fn limit_idle(idle: Duration, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let done = Arc::new(AtomicBool::new(body.is_end_stream()));
    parts.extensions.insert(BodyDone(Arc::clone(&done)));
    let body = if done.load(Ordering::Relaxed) {
        body
    } else {
        Body::from_stream(idle_limited(body, idle, Some(done)))
    };
    next.run(Request::from_parts(parts, body)).await
}

/// The body as a stream that fails with [`BodyError::Stalled`] when no data arrives for `idle`;
/// `done`, when given, is set when it ends.
pub fn idle_limited(
    body: Body,
    idle: Duration,
    done: Option<Arc<AtomicBool>>,
) -> impl Stream<Item = Result<Bytes, BodyError>> {
    let stream = body.into_data_stream();
    futures::stream::unfold(Some(stream), move |state| {
        let done = done.clone();
        async move {
            let mut stream = state?;
            match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Some((Err(BodyError::Stalled(idle)), None)),
                Ok(None) => {
                    if let Some(done) = done {
                        done.store(true, Ordering::Relaxed);
                    }
                    None
                }
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(stream))),
                Ok(Some(Err(e))) => Some((Err(BodyError::of(&e)), None)),
            }
        }
    })
}

/// Reads and discards what is left of a request body, at most `max_bytes` and, when given, for
/// at most `within` (the body's own idle timeout still applies), and says whether it reached the
/// end. An answer sent before its request's body was
/// read (a blob that is already stored, an error) otherwise closes the connection with unread
/// bytes, which the kernel turns into a reset: a client that does not wait for `100 Continue`
/// and is still sending gets "broken pipe" instead of the answer. nginx's lingering close does
/// the same for the same reason.
pub async fn drain<S>(body: S, max_bytes: u64, within: Option<Duration>) -> bool
where
    S: Stream<Item = Result<Bytes, BodyError>>,
{
    let reading = async {
        let mut body = std::pin::pin!(body);
        let mut read = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => read += chunk.len() as u64,
                Err(_) => return false,
            }
            if read > max_bytes {
                return false;
            }
        }
        true
    };
    match within {
        Some(within) => tokio::time::timeout(within, reading).await.unwrap_or(false),
        None => reading.await,
    }
}
