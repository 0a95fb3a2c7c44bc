//! Condemned blobs: what a garbage collection is about to delete, written to the store before
//! it deletes anything, so that every replica creating a bundle can see it (the safety argument
//! is in [`super::gc`]).
//!
//! One batch is one object `gc/condemned/<random>.json`: the time it was written by the
//! collector's clock and up to [`BATCH_SIZE`] digests. A collector deletes a batch's blobs only
//! within [`LEASE`] of writing it, then deletes the batch. Readers take a batch as live until
//! [`LEASE`] + [`CLOCK_SKEW`] after it was written (by their own clock), and ignore it after
//! that: a collector that died leaves a batch that stops mattering, and the next collection
//! deletes it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sparkstage_api::Digest;

use crate::clock::SharedClock;
use crate::error::ApiError;

/// Where batches live.
pub const PREFIX: &str = "gc/condemned";
/// Digests in one batch.
pub const BATCH_SIZE: usize = 1000;
/// How long after writing a batch its collector may still delete its blobs.
pub const LEASE: Duration = Duration::from_secs(120);
/// How far apart the clocks of two replicas may be.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How often a writer waiting for a condemned blob looks again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFile {
    written_at: DateTime<Utc>,
    digests: Vec<Digest>,
}

/// A batch this replica wrote.
#[derive(Debug)]
pub struct Batch {
    path: Path,
    pub written_at: DateTime<Utc>,
}

impl Batch {
    /// Whether its blobs may still be deleted at `now`.
    pub fn may_delete(&self, now: DateTime<Utc>) -> bool {
        now < self.written_at + lease()
    }
}

fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX)
}

fn live_for() -> chrono::Duration {
    chrono::Duration::from_std(LEASE + CLOCK_SKEW).unwrap_or(chrono::Duration::MAX)
}

#[derive(Debug, Clone)]
pub struct Condemned {
    store: Arc<dyn ObjectStore>,
    clock: SharedClock,
}

impl Condemned {
    pub fn new(store: Arc<dyn ObjectStore>, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// Writes a batch of `digests`, at most [`BATCH_SIZE`].
    pub async fn write(&self, digests: &[Digest]) -> Result<Batch, ApiError> {
        let mut name = [0u8; 16];
        rand::rng().fill_bytes(&mut name);
        let path = Path::from(format!("{PREFIX}/{}.json", hex::encode(name)));
        let written_at = self.clock.now();
        let json = serde_json::to_vec(&BatchFile {
            written_at,
            digests: digests.to_vec(),
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(json), options)
            .await?;
        Ok(Batch { path, written_at })
    }

    /// Deletes a batch once its collector is done with it.
    pub async fn remove(&self, batch: Batch) -> Result<(), ApiError> {
        crate::storage::delete_quietly(self.store.as_ref(), &batch.path).await
    }

    /// The digests of every live batch, of all replicas.
    pub async fn live(&self) -> Result<HashSet<Digest>, ApiError> {
        let now = self.clock.now();
        let batches: Vec<Option<BatchFile>> = self
            .store
            .list(Some(&Path::from(PREFIX)))
            .map_err(ApiError::from)
            .map_ok(|meta| async move { read(self.store.as_ref(), &meta.location).await })
            .try_buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(batches
            .into_iter()
            .flatten()
            .filter(|b| now < b.written_at + live_for())
            .flat_map(|b| b.digests)
            .collect())
    }

    /// Which of `digests` are condemned now.
    pub async fn which(&self, digests: &[Digest]) -> Result<HashSet<Digest>, ApiError> {
        let live = self.live().await?;
        if live.is_empty() {
            return Ok(live);
        }
        Ok(digests
            .iter()
            .filter(|d| live.contains(d))
            .copied()
            .collect())
    }

    /// Waits until `digest` is condemned by no live batch: its collector deleted it (or kept
    /// it) and removed the batch, or the batch outlived its lease. At most [`LEASE`] +
    /// [`CLOCK_SKEW`] by this replica's clock; the time stops mattering there.
    pub async fn wait_until_free(&self, digest: &Digest) -> Result<(), ApiError> {
        let started = tokio::time::Instant::now();
        while self
            .which(std::slice::from_ref(digest))
            .await?
            .contains(digest)
        {
            if started.elapsed() > LEASE + CLOCK_SKEW {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Deletes batches past their life (their collector stopped); returns how many.
    pub async fn remove_dead(&self) -> Result<usize, ApiError> {
        let now = self.clock.now();
        let paths: Vec<Path> = self
            .store
            .list(Some(&Path::from(PREFIX)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut removed = 0;
        for path in paths {
            let dead = match read(self.store.as_ref(), &path).await? {
                Some(batch) => now >= batch.written_at + live_for(),
                // Not a batch of ours (a torn or foreign file): nothing reads it.
                None => true,
            };
            if dead {
                crate::storage::delete_quietly(self.store.as_ref(), &path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A batch, or `None` when it is gone or unreadable (a batch is written whole, so an unreadable
/// one is not ours; it is ignored, and removed by [`Condemned::remove_dead`]).
async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<BatchFile>, ApiError> {
    crate::storage::read_json(store, path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn batches_are_live_for_their_lease_and_the_skew_then_removed() -> Result<(), ApiError> {
        let clock = ManualClock::new(Utc::now());
        let condemned = Condemned::new(Arc::new(InMemory::new()), Arc::new(clock.clone()));
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let first = condemned.write(&[a, b]).await?;
        let second = condemned.write(&[c]).await?;
        assert_eq!(condemned.which(&[a, c]).await?, HashSet::from([a, c]));
        assert!(first.may_delete(clock.now()));
        condemned.remove(second).await?;
        assert_eq!(condemned.which(&[a, c]).await?, HashSet::from([a]));
        clock.advance(LEASE);
        assert!(!first.may_delete(clock.now()), "past the lease");
        assert_eq!(condemned.remove_dead().await?, 0, "still live for readers");
        assert!(condemned.which(&[a]).await?.contains(&a));
        clock.advance(CLOCK_SKEW);
        assert!(condemned.which(&[a]).await?.is_empty());
        assert_eq!(condemned.remove_dead().await?, 1);
        Ok(())
    }
}
