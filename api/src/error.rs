//! The JSON body of every error answer: `{"code": "...", "message": "..."}`.

use serde::{Deserialize, Serialize};

/// An error answer. `code` is a stable machine-readable word (`digest_mismatch`,
/// `bundle_not_found`, ...); `message` says what was expected, what was found and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}
