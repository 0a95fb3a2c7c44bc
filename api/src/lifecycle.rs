//! `POST /v1/gc` (upload token): one sweep of expired and unused bundles and one garbage
//! collection of unreferenced blobs, run now by the server, or only reported (`dry_run`); and
//! the state of a bundle that `GET /v1/bundles` shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Digest;

/// Why the lifecycle deleted a bundle; also the `reason` label of
/// `sparkstage_bundles_deleted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Its ttl passed.
    Expired,
    /// Never downloaded within `--initial-access-timeout` (owner tracking).
    Unused,
    /// Its last pod has been gone for `--owner-grace` (owner tracking).
    OwnerGone,
    /// Its namespace is gone (owner tracking).
    NamespaceGone,
    /// Deleted through the API (`DELETE /v1/bundles/{id}`, `sparkstage rm`).
    Deleted,
}

impl DeleteReason {
    pub const ALL: [Self; 5] = [
        Self::Expired,
        Self::Unused,
        Self::OwnerGone,
        Self::NamespaceGone,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Unused => "unused",
            Self::OwnerGone => "owner_gone",
            Self::NamespaceGone => "namespace_gone",
            Self::Deleted => "deleted",
        }
    }
}

impl std::fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Report what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A bundle the sweep deleted (or would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweptBundle {
    pub id: String,
    pub reason: DeleteReason,
}

/// A blob the collection deleted (or would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectedBlob {
    pub digest: Digest,
    pub size: u64,
}

/// The answer of `POST /v1/gc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcResponse {
    pub dry_run: bool,
    /// Bundles deleted (or that would be).
    pub bundles: Vec<SweptBundle>,
    /// Blobs deleted (or that would be); at most [`GC_LISTED_BLOBS`], `blobs_deleted` counts
    /// them all.
    pub blobs: Vec<CollectedBlob>,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    /// Blobs still referenced, or younger than the grace, that were kept.
    pub blobs_kept: u64,
    /// Bytes stored after the collection, and the `--max-storage` cap.
    pub storage_used: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage: Option<u64>,
}

/// The most blobs a [`GcResponse`] lists one by one.
pub const GC_LISTED_BLOBS: usize = 1000;

/// Where a bundle is in its life, as `GET /v1/bundles` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleState {
    /// When a pod first read its manifest; `None`: never (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_download_at: Option<DateTime<Utc>>,
    /// Pods of the bundle that exist now; `None` when the server does not track owners
    /// (`--kubernetes` off) or does not know yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
    /// When the lifecycle will delete it if nothing changes: its expiry, or earlier when owner
    /// tracking says so.
    pub deleted_at: DateTime<Utc>,
    /// Why it will be deleted then.
    pub reason: DeleteReason,
}
