//! The wire of the 2017 fork's resource staging server (apache-spark-on-k8s,
//! branch-2.2-kubernetes, `deploy/rest/k8s/`), which sparkstage serves beside its own API so
//! that the fork's clients and pods work unchanged:
//!
//! - `POST /api/v0/resources` (the fork's Retrofit client adds a `/`), multipart: the part [`RESOURCES_PART`] (a tar.gz) and the part
//!   [`OWNER_PART`] ([`ResourcesOwner`] as JSON); the answer is [`UploadResponse`];
//! - `GET /api/v0/resources/{resourceId}` with `Authorization: <resourceSecret>` (the raw secret,
//!   no scheme): the uploaded bytes, `application/octet-stream`;
//! - `GET /api/v0/ping` (and `/api/ping`, which the fork's Retrofit client called): `pong`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The upload route.
pub const RESOURCES_PATH: &str = "/api/v0/resources";
/// The multipart part that carries the tar.gz.
pub const RESOURCES_PART: &str = "resources";
/// The multipart part that carries the owner.
pub const OWNER_PART: &str = "resourcesOwner";
/// The one owner type the fork had.
pub const OWNER_TYPE_POD: &str = "Pod";
/// What ping answers.
pub const PONG: &str = "pong";
/// The name of the one entry of a fork resource's bundle: the archive as uploaded.
pub const ARCHIVE_ENTRY: &str = "resources.tar.gz";

/// Whose the resources are: the pods of `owner_namespace` that carry `owner_labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesOwner {
    pub owner_namespace: String,
    #[serde(default)]
    pub owner_labels: BTreeMap<String, String>,
    /// [`OWNER_TYPE_POD`].
    pub owner_type: String,
}

/// The answer to an upload. The secret is shown once; the server keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    pub resource_id: String,
    pub resource_secret: String,
}
