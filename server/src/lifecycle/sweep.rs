//! The sweep: every `--sweep-interval`, bundle records whose time has come are deleted (with
//! their first-download mark), and so are kept resolutions past their time.
//!
//! When a bundle's time comes ([`plan`]), earliest first:
//! - its ttl passes (`expired`), always;
//! - with owner tracking, for a bundle whose owner names a namespace, and only while the cluster
//!   can be seen: never downloaded `--initial-access-timeout` after its creation while no pod of
//!   it exists (`unused`); downloaded, `--owner-grace` after its last pod went (`owner_gone`);
//!   at once when its namespace is gone (`namespace_gone`). While a pod of it exists it is not
//!   deleted for any reason but its ttl.
//!
//! Every step is idempotent: two replicas sweeping at once delete the same records, and the
//! second delete finds nothing. Records are immutable, so what the sweep needs of one (times and
//! owner) is read once and remembered.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use sparkstage_api::bundles::Owner;
use sparkstage_api::lifecycle::{BundleState, DeleteReason, SweptBundle};

use super::owners::OwnerState;
use super::referrers::{self, RESOLUTIONS_PREFIX};
use super::{Lifecycle, LifecycleSettings};
use crate::bundle::BundleRecord;
use crate::error::ApiError;

/// Records examined at once.
const CONCURRENCY: usize = 16;
/// A source's fetch lease (`crate::source_lease`) not written for this long belongs to a
/// replica that died; a live one is renewed every 20 s.
const DEAD_LEASE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What the sweep needs of a record; records never change.
#[derive(Debug, Clone)]
pub struct Facts {
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub owner: Option<Owner>,
}

impl Facts {
    pub fn of(record: &BundleRecord) -> Self {
        Self {
            created_at: record.manifest.created_at,
            expires_at: record.manifest.expires_at,
            owner: record.manifest.owner.clone(),
        }
    }

    /// The owner that tracking follows: one that names a namespace.
    fn tracked_owner(&self) -> Option<&Owner> {
        self.owner.as_ref().filter(|o| o.namespace.is_some())
    }
}

fn after(at: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// When the bundle is to be deleted, and why, as things stand at `now`.
pub fn plan(
    facts: &Facts,
    first_download: Option<DateTime<Utc>>,
    owner: OwnerState,
    settings: &LifecycleSettings,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DeleteReason) {
    let ttl = (facts.expires_at, DeleteReason::Expired);
    if facts.tracked_owner().is_none() {
        return ttl;
    }
    let owned = match (owner, first_download) {
        (OwnerState::Unknown | OwnerState::Pods(_), _) => None,
        (OwnerState::NamespaceGone, _) => Some((now, DeleteReason::NamespaceGone)),
        (OwnerState::Gone { .. }, None) => Some((
            after(facts.created_at, settings.initial_access_timeout),
            DeleteReason::Unused,
        )),
        (OwnerState::Gone { since }, Some(first)) => Some((
            after(since.max(first), settings.owner_grace),
            DeleteReason::OwnerGone,
        )),
    };
    match owned {
        Some(owned) if owned.0 < ttl.0 => owned,
        _ => ttl,
    }
}

impl Lifecycle {
    /// What the sweep knows of the record `id`, read once; `None` when it is gone or corrupt.
    async fn facts(&self, id: &str) -> Result<Option<Arc<Facts>>, ApiError> {
        if let Some(facts) = self.known.lock().ok().and_then(|k| k.get(id).cloned()) {
            return Ok(Some(facts));
        }
        let record = match self.bundles.load(id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            Err(ApiError::Internal(detail)) => {
                tracing::warn!(bundle = %id, %detail, "sweep skips a bundle record it cannot read");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let facts = Arc::new(Facts::of(&record));
        if let Ok(mut known) = self.known.lock() {
            known.insert(id.to_owned(), Arc::clone(&facts));
        }
        Ok(Some(facts))
    }

    /// The owner's state and the first download, as far as they matter for `facts`.
    async fn owner_facts(
        &self,
        id: &str,
        facts: &Facts,
    ) -> Result<(OwnerState, Option<DateTime<Utc>>), ApiError> {
        let Some(owner) = facts.tracked_owner() else {
            return Ok((OwnerState::Unknown, None));
        };
        let mut state = self.owners.state(owner);
        if state == OwnerState::Unknown {
            return Ok((state, None));
        }
        // Only a bundle without pods can have lost its namespace.
        if let (OwnerState::Gone { .. }, Some(namespace)) = (state, &owner.namespace)
            && self.owners.namespace_gone(namespace).await
        {
            state = OwnerState::NamespaceGone;
        }
        Ok((state, self.bundles.first_download(id).await?))
    }

    /// Where the bundle of `record` is in its life.
    pub async fn state(&self, record: &BundleRecord) -> Result<BundleState, ApiError> {
        let facts = Facts::of(record);
        let owner = facts
            .tracked_owner()
            .map_or(OwnerState::Unknown, |o| self.owners.state(o));
        let first_download = self.bundles.first_download(record.id()).await?;
        let (deleted_at, reason) = plan(
            &facts,
            first_download,
            owner,
            &self.settings,
            self.clock.now(),
        );
        Ok(BundleState {
            first_download_at: first_download,
            pods: match owner {
                OwnerState::Pods(n) => Some(n),
                OwnerState::Gone { .. } | OwnerState::NamespaceGone => Some(0),
                OwnerState::Unknown => None,
            },
            deleted_at,
            reason,
        })
    }

    /// One sweep; `dry_run` deletes nothing.
    pub(super) async fn sweep_records(&self, dry_run: bool) -> Result<Vec<SweptBundle>, ApiError> {
        let now = self.clock.now();
        let ids: Vec<String> = self.bundles.ids().try_collect().await?;
        let due: Vec<Option<SweptBundle>> = futures::stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let id = id.as_str();
                let Some(facts) = self.facts(id).await? else {
                    return Ok(None);
                };
                let (owner, first_download) = self.owner_facts(id, &facts).await?;
                let (at, reason) = plan(&facts, first_download, owner, &self.settings, now);
                if at > now {
                    return Ok(None);
                }
                if !dry_run {
                    self.bundles.remove(id).await?;
                    self.metrics.bundle_deleted(reason);
                    tracing::info!(bundle = %id, %reason, "bundle deleted by the lifecycle");
                }
                Ok::<_, ApiError>(Some(SweptBundle {
                    id: id.to_owned(),
                    reason,
                }))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let swept: Vec<SweptBundle> = due.into_iter().flatten().collect();
        // Forget what is gone (this replica's deletions and everyone else's).
        if let Ok(mut known) = self.known.lock() {
            let listed: HashSet<&String> = ids.iter().collect();
            known.retain(|id, _| listed.contains(id));
            if !dry_run {
                for s in &swept {
                    known.remove(&s.id);
                }
            }
        }
        if !dry_run {
            self.sweep_resolutions(now).await?;
            self.sweep_sources(now).await?;
            self.sweep_maven_files(now).await?;
            self.sweep_by_age(crate::source_lease::LEASES_PREFIX, DEAD_LEASE, now)
                .await?;
            self.sweep_pending(now).await?;
        }
        let mut swept = swept;
        swept.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(swept)
    }

    /// Source records: those past their time go, then (with `--cache-max-size`) the least
    /// recently used (the earliest `expires_at`, which use extends) until the sources the rest
    /// keep fit. Each record is read once. Their blobs go with the next collection unless a
    /// bundle refers to them.
    async fn sweep_sources(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let store = &self.store;
        let paths: Vec<Path> = store
            .list(Some(&Path::from(crate::sources::SOURCES_PREFIX)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let records: Vec<(Path, crate::sources::SourceRecord)> = futures::stream::iter(paths)
            .map(|path| async move {
                let record = crate::storage::read_json(store.as_ref(), &path).await?;
                Ok::<_, ApiError>(record.map(|r| (path, r)))
            })
            .buffer_unordered(CONCURRENCY)
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        let (expired, mut live): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|(_, r)| r.expires_at <= now);
        let mut doomed: Vec<Path> = expired.into_iter().map(|(path, _)| path).collect();
        if let Some(max) = self.settings.cache_max_size {
            live.sort_by_key(|(_, r)| std::cmp::Reverse(r.expires_at));
            let mut kept = 0u64;
            for (path, record) in live {
                kept = kept.saturating_add(record.size);
                if kept > max {
                    doomed.push(path);
                }
            }
        }
        futures::stream::iter(doomed)
            .map(|path| async move { crate::storage::delete_quietly(store.as_ref(), &path).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Deletes the shared Maven cache's POMs and metadata (`crate::maven_cache`) written more
    /// than `--cache-max-age` ago: the next resolution that needs one fetches it again.
    async fn sweep_maven_files(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let max_age = chrono::Duration::from_std(self.settings.cache_max_age)
            .unwrap_or(chrono::TimeDelta::MAX);
        self.sweep_by_age(crate::maven_cache::MAVEN_PREFIX, max_age, now)
            .await
    }

    /// Deletes the objects under `prefix` last written more than `max_age` before `now`.
    async fn sweep_by_age(
        &self,
        prefix: &str,
        max_age: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let store = &self.store;
        store
            .list(Some(&Path::from(prefix)))
            .map_err(ApiError::from)
            .try_filter(|meta| {
                let due = meta.last_modified.checked_add_signed(max_age);
                futures::future::ready(due.is_some_and(|due| due <= now))
            })
            .map_ok(|meta| async move {
                crate::storage::delete_quietly(store.as_ref(), &meta.location).await
            })
            .try_buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Deletes pending bundles (`crate::pending`) whose bundle would have expired by now: one
    /// whose sources never arrived does not stay forever.
    async fn sweep_pending(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let store = &self.store;
        let paths: Vec<Path> = store
            .list(Some(&Path::from(crate::pending::PENDING_PREFIX)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for path in paths {
            let pending: Option<crate::pending::PendingBundle> =
                crate::storage::read_json(store.as_ref(), &path).await?;
            if pending.is_some_and(|p| p.record.manifest.expires_at <= now) {
                crate::storage::delete_quietly(store.as_ref(), &path).await?;
            }
        }
        Ok(())
    }

    /// Deletes kept resolutions past their time.
    async fn sweep_resolutions(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let store = &self.store;
        let paths: Vec<Path> = store
            .list(Some(&Path::from(RESOLUTIONS_PREFIX)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        futures::stream::iter(paths)
            .map(|path| async move {
                let expired = match referrers::read(store.as_ref(), &path).await {
                    Ok(Some(refs)) => refs.expires_at <= now,
                    Ok(None) => false,
                    // Unreadable: not ours to judge; garbage collection stops on it and says so.
                    Err(_) => false,
                };
                if expired {
                    crate::storage::delete_quietly(store.as_ref(), &path).await?;
                }
                Ok::<_, ApiError>(())
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn settings() -> LifecycleSettings {
        LifecycleSettings {
            initial_access_timeout: Duration::from_secs(1800),
            owner_grace: Duration::from_secs(300),
            ..LifecycleSettings::default()
        }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minutes)
    }

    fn facts(namespace: Option<&str>) -> Facts {
        Facts {
            created_at: at(0),
            expires_at: at(24 * 60),
            owner: Some(Owner {
                namespace: namespace.map(str::to_owned),
                labels: BTreeMap::new(),
                spark_app_id: None,
            }),
        }
    }

    #[test]
    fn the_ttl_caps_everything_and_owners_bring_it_forward() {
        let s = settings();
        let tracked = facts(Some("spark"));
        let now = at(10);
        // Without tracking (or without a namespace, or unseen cluster): the ttl.
        for (f, state) in [
            (&tracked, OwnerState::Unknown),
            (&facts(None), OwnerState::Gone { since: at(0) }),
            (&tracked, OwnerState::Pods(3)),
        ] {
            assert_eq!(
                plan(f, None, state, &s, now),
                (at(24 * 60), DeleteReason::Expired)
            );
        }
        // Never downloaded, no pod: 30 min after creation.
        assert_eq!(
            plan(&tracked, None, OwnerState::Gone { since: at(0) }, &s, now),
            (at(30), DeleteReason::Unused)
        );
        // Downloaded at 5, last pod gone at 40: 5 min later.
        assert_eq!(
            plan(
                &tracked,
                Some(at(5)),
                OwnerState::Gone { since: at(40) },
                &s,
                now
            ),
            (at(45), DeleteReason::OwnerGone)
        );
        // Tracking started (no pod seen) before the download: counted from the download.
        assert_eq!(
            plan(
                &tracked,
                Some(at(50)),
                OwnerState::Gone { since: at(1) },
                &s,
                now
            ),
            (at(55), DeleteReason::OwnerGone)
        );
        assert_eq!(
            plan(&tracked, Some(at(5)), OwnerState::NamespaceGone, &s, now),
            (now, DeleteReason::NamespaceGone)
        );
        // An owner deadline past the ttl: the ttl.
        let short = Facts {
            expires_at: at(20),
            ..tracked.clone()
        };
        assert_eq!(
            plan(&short, None, OwnerState::Gone { since: at(0) }, &s, now),
            (at(20), DeleteReason::Expired)
        );
    }
}
