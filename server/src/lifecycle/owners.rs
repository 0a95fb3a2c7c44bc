//! What the cluster says about a bundle's owner: its pods, as owner tracking sees them.
//!
//! The lifecycle asks through [`Owners`], a small trait: [`NoOwners`] when the server runs
//! without `--kubernetes` (the ttl alone applies), the `kube` watch otherwise, and test doubles.
//! An implementation that cannot see the cluster (not started, watch failing, not yet synced)
//! answers [`OwnerState::Unknown`], and the lifecycle then deletes nothing on the owner's
//! account.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sparkstage_api::bundles::Owner;

/// The pods of one owner, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Not tracked, or the cluster cannot be seen now.
    Unknown,
    /// This many pods carry the owner's labels in its namespace.
    Pods(u32),
    /// No pod carries them, since this time (when the last one went, or when tracking started
    /// to see the cluster if none was ever seen).
    Gone { since: DateTime<Utc> },
    /// The owner's namespace does not exist.
    NamespaceGone,
}

/// Owner tracking, as the lifecycle consults it.
pub trait Owners: Send + Sync + Debug {
    /// The state of the pods that `owner` names (its namespace, and pods that carry its bundle
    /// label).
    fn state(&self, owner: &Owner) -> OwnerState;

    /// Whether `namespace` is known not to exist (`false` when it exists or cannot be told).
    fn namespace_gone<'a>(&'a self, _namespace: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(false))
    }
}

/// No owner tracking: every owner is [`OwnerState::Unknown`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOwners;

impl Owners for NoOwners {
    fn state(&self, _owner: &Owner) -> OwnerState {
        OwnerState::Unknown
    }
}
