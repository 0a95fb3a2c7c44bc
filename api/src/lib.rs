//! Wire types of the sparkstage HTTP API.
//!
//! Every request and response body that crosses the network between `sparkstage-server`, the
//! init container `sparkstage-init` and the `sparkstage` client is defined here, once. A change
//! to the protocol is a change in this crate, and the compiler finds every user.
//!
//! Modules follow the API's endpoints:
//! - [`digest`]: the `sha256:<hex>` digests that name blobs;
//! - [`blobs`]: `PUT`/`HEAD /v1/blobs/sha256:<hex>` and `POST /v1/blobs/missing`;
//! - [`bundles`]: `POST /v1/bundles`, `GET`/`DELETE /v1/bundles/{id}` and their entries;
//! - [`lifecycle`]: `POST /v1/gc` and the state of a bundle;
//! - [`resolve`]: `POST /v1/resolve` (Maven coordinates resolved by the server);
//! - [`info`]: `GET /v1/info`, what a server offers;
//! - [`error`]: the JSON error body every endpoint answers with;
//! - [`size`]: byte sizes (`512MiB`) as flags and spec files write them;
//! - [`shown`]: what messages and logs may show of URLs (no credentials) and outside text.

pub mod blobs;
pub mod bundles;
pub mod digest;
pub mod error;
pub mod fork;
pub mod info;
pub mod lifecycle;
pub mod resolve;
pub mod shown;
pub mod size;

pub use digest::Digest;
pub use error::ErrorBody;

/// The HTTP header that carries bearer tokens, both upload tokens and bundle tokens.
pub const AUTHORIZATION: &str = "authorization";
