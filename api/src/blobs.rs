//! `PUT /v1/blobs/sha256:<hex>`, `HEAD /v1/blobs/sha256:<hex>`, `POST /v1/blobs/missing`.
//!
//! `PUT` streams the blob's bytes as the request body (any content type); the server hashes and
//! counts while writing and commits only when digest and `Content-Length` match. It answers 201
//! when the blob is new and 200 when it was already stored, both with [`PutBlobResponse`].

use serde::{Deserialize, Serialize};

use crate::Digest;

/// The route of a single blob, `/v1/blobs/sha256:<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("/v1/blobs/{digest}")
}

/// The route of the find-missing call.
pub const MISSING_PATH: &str = "/v1/blobs/missing";

/// The answer to a successful `PUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBlobResponse {
    pub digest: Digest,
    pub size: u64,
    /// `false` when the blob was already stored and the body was not written again.
    pub created: bool,
}

/// `POST /v1/blobs/missing`: which of these digests does the server lack?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindMissingRequest {
    pub digests: Vec<Digest>,
}

/// The digests of the request that are not stored, in request order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindMissingResponse {
    pub missing: Vec<Digest>,
}
