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
