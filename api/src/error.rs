//! The JSON body of every error answer: `{"code": "...", "message": "..."}`.

use serde::{Deserialize, Serialize};

/// An error answer. `code` is a stable machine-readable word (`digest_mismatch`,
/// `bundle_not_found`, ...); `message` says what was expected, what was found and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `kind` followed by the messages of `error`'s sources, without `error`'s own message: an HTTP
/// client's error message carries the URL, whose query string may hold a secret (a presigned
/// URL's signature), while its sources say what went wrong (connection refused, reset, ...).
pub fn describe_sources(kind: &str, error: &dyn std::error::Error) -> String {
    let mut message = kind.to_owned();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The most of an error answer's body that is read: enough for any JSON error of ours or a
/// WebHDFS `RemoteException`, never a whole file a hostile server sends instead.
pub const ERROR_BODY_MAX: usize = 64 << 10;

/// The first [`ERROR_BODY_MAX`] bytes of an error answer's body (what arrived, if it broke).
#[cfg(feature = "reqwest")]
pub async fn error_body_bytes(response: reqwest::Response) -> Vec<u8> {
    body_bytes(response, ERROR_BODY_MAX).await
}

/// The first `max` bytes of an answer's body (what arrived, if it broke).
#[cfg(feature = "reqwest")]
pub async fn body_bytes(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == max {
            break;
        }
    }
    body
}

/// A sparkstage error answer's `(code, message)` as they may be shown: read within
/// [`ERROR_BODY_MAX`], cut and stripped of control characters ([`crate::shown::outside`]).
/// `None` when the body is not our JSON error.
#[cfg(feature = "reqwest")]
pub async fn error_answer(response: reqwest::Response) -> Option<(String, String)> {
    let body = error_body_bytes(response).await;
    let e: ErrorBody = serde_json::from_slice(&body).ok()?;
    Some((
        crate::shown::outside(&e.code, 64),
        crate::shown::outside(&e.message, 2 * crate::shown::OUTSIDE_TEXT_CHARS),
    ))
}

/// A reqwest error as [`describe_sources`] tells it, with its kind: timed out, cannot connect,
/// broken body, or request failed. Never its URL.
#[cfg(feature = "reqwest")]
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken body"
    } else {
        "request failed"
    };
    describe_sources(kind, e)
}
