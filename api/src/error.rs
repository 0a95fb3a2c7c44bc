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
