//! `GET /v1/info`: what a server offers, for clients to choose how to use it. It needs no token
//! and says nothing secret.

use serde::{Deserialize, Serialize};

pub const INFO_PATH: &str = "/v1/info";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
    /// Pods may fetch bundles with their own ServiceAccount token (the server runs with
    /// `--kubernetes`): `sparkstage submit --inject webhook` then creates no Secret.
    pub pod_identity: bool,
    /// The server fetches bundles' source entries itself, once for the cluster
    /// (`POST /v1/bundles` with `sources`): `sparkstage submit --fetch-remote` then sends the
    /// remote URIs there instead of to every init container.
    #[serde(default)]
    pub sources: bool,
}
