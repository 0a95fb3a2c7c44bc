//! `POST /v1/resolve`: Maven coordinates resolved by the server, their jars stored as blobs.

use serde::{Deserialize, Serialize};

use crate::Digest;

/// A resolution request (upload token required).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `group:artifact:version` or `group:artifact:extension:classifier:version`, in order.
    pub coordinates: Vec<String>,
    /// http(s) repositories asked after the server's own (as `--repositories`).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// `group:artifact` excluded everywhere (as `--exclude-packages`); `*` matches any part.
    #[serde(default)]
    pub exclusions: Vec<String>,
    /// `spark` (default: what `spark-submit --packages` resolves) or `maven`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// One resolved jar, stored as a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedArtifact {
    /// `group:artifact:version`, with `:classifier` when there is one.
    pub coordinate: String,
    /// The name Spark gives the jar: `group_artifact-version[-classifier].jar`.
    pub file_name: String,
    pub digest: Digest,
    pub size: u64,
    /// The coordinates from the request to the one that pulled this jar in (empty for a
    /// requested coordinate).
    #[serde(default)]
    pub pulled_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveResponse {
    pub mode: String,
    /// The jars, in the order the resolution reached them.
    pub artifacts: Vec<ResolvedArtifact>,
    /// Artifacts that are not jars (`aar`, `pom`, ...), which Spark skips too.
    #[serde(default)]
    pub skipped: Vec<String>,
}
