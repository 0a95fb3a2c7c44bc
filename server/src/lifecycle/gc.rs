//! Garbage collection of blobs: every `--gc-interval`, blobs that no live bundle and no kept
//! resolution references, and that are older than `--gc-grace`, are deleted.
//!
//! # The protocol
//!
//! A collection, on any replica:
//! 1. **marks**: lists every referring record ([`super::referrers`]: bundle records and kept
//!    resolutions) and reads the live ones; their blobs are referenced;
//! 2. **lists** the blobs, streamed; a blob neither referenced nor modified within the grace is a
//!    candidate; candidates go in batches of [`BATCH_SIZE`];
//! 3. for each batch: **condemns** it (writes it to the store, [`super::condemned`]), then
//!    **looks again** at the referring records (lists them, reads those it has not seen) and
//!    takes their blobs out of the batch, then **deletes** the rest while the batch's lease
//!    lasts, then removes the batch.
//!
//! A writer of a referring record (a bundle's creation, a resolution's answer), on any replica:
//! 1. **writes the record**, then
//! 2. **checks** its blobs: none may be condemned by a live batch, and all must exist with
//!    their sizes. Otherwise it deletes its record and fails (409 with the blobs to upload
//!    again; a resolution stores them again). An upload of a condemned blob waits until the
//!    batch is gone, then stores it anew.
//!
//! # Why no blob that a live record references is ever deleted
//!
//! Take a record R that a writer wrote at time `w` and whose check passed at `c > w`, and a
//! blob B of R that a collection deleted at `d`. The store is linearizable for single objects
//! and its listings are strongly consistent (a local directory; S3, GCS and Azure Blob all
//! guarantee read-after-write and list-after-write). Let the collection's batch holding B be
//! written at `b` and its second look listed the records at `l`, so `b < l < d`.
//! - If `w < l`, the second look listed R, read it and took B out of the batch: B is not
//!   deleted. (If `w` is before the mark, the mark already had it.) So `w > l`.
//! - Then `c > w > l > b`: the check ran after the batch was written. Either the batch was still
//!   there, live, and the check saw B condemned and failed; or the collection had already
//!   removed it, after its deletions, so `c > d` and the check saw B missing and failed; or the
//!   batch was past its life for the writer (`LEASE + CLOCK_SKEW` after `b`), and then, clocks
//!   being at most `CLOCK_SKEW` apart, its collector had stopped deleting (it deletes only
//!   within `LEASE` of `b`). In every case the check failed: contradiction.
//!
//! So a record whose check passed keeps its blobs for as long as it is live. What the argument
//! needs: a bound on clock skew between replicas ([`super::condemned::CLOCK_SKEW`], 1 min; NTP keeps nodes within
//! milliseconds) and a delete request that reaches the store within its lease (a delete that
//! hangs in the network for minutes and lands later is the one case outside it, as for every
//! lease-based design). The grace is not needed for safety; it keeps blobs uploaded for a
//! bundle that is not created yet (a client uploads, then creates), and costs a late bundle a
//! 409 and an upload, never a broken bundle.
//!
//! This is the discipline of Harbor's and zot's time windows and of REAPI's "an existence check
//! extends the lifetime", made exact with a written intent: the condemned batch is what a
//! writer can see, so the one interleaving a time window leaves open (a writer that checked
//! just before the delete) fails the writer's check instead of breaking its bundle.
//!
//! Memory: the blob listing is streamed and candidates are held one batch at a time; what grows
//! is the set of referenced digests (8 bytes each, see `Referenced`) and the keys of referring
//! records.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use sparkstage_api::Digest;
use sparkstage_api::lifecycle::{CollectedBlob, GC_LISTED_BLOBS};

use super::Lifecycle;
use super::condemned::BATCH_SIZE;
use super::referrers;
use crate::blob_store::ListedBlob;
use crate::error::ApiError;

/// Deletes in flight at once.
const DELETE_CONCURRENCY: usize = 16;
/// Referring records read at once.
const READ_CONCURRENCY: usize = 16;

/// What one collection did (or would do).
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// The first [`GC_LISTED_BLOBS`] blobs deleted.
    pub blobs: Vec<CollectedBlob>,
    pub deleted: u64,
    pub freed: u64,
    pub kept: u64,
}

impl Collected {
    fn record(&mut self, blob: &ListedBlob) {
        self.deleted += 1;
        self.freed += blob.size;
        if self.blobs.len() < GC_LISTED_BLOBS {
            self.blobs.push(CollectedBlob {
                digest: blob.digest,
                size: blob.size,
            });
        }
    }
}

/// An async step a test runs at a point of the protocol, to force an interleaving.
pub type Hook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// Points of the protocol where tests may step in (none in production).
#[derive(Clone, Default)]
pub struct Hooks {
    /// After the mark, before the blobs are listed.
    pub after_mark: Option<Hook>,
    /// After a batch is condemned, before the second look.
    pub after_condemn: Option<Hook>,
    /// After the second look, before the batch's deletions.
    pub before_delete: Option<Hook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

async fn run(hook: &Option<Hook>) {
    if let Some(hook) = hook {
        hook().await;
    }
}

/// The digests live records reference, kept as their first 64 bits: 8 bytes each in a sorted
/// vector (those of the first look) and a small set (those of later looks). Two digests that
/// share their first 64 bits make a blob look referenced that is not: it is kept, the safe side
/// (and for a million digests the odds are about 1 in 10^7).
#[derive(Default)]
struct Referenced {
    sorted: Vec<u64>,
    later: HashSet<u64>,
    sealed: bool,
}

fn prefix(digest: &Digest) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

impl Referenced {
    fn add(&mut self, digest: &Digest) {
        if self.sealed {
            self.later.insert(prefix(digest));
        } else {
            self.sorted.push(prefix(digest));
        }
    }

    /// Ends the first look: sorted, without duplicates, without spare room.
    fn seal(&mut self) {
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.sorted.shrink_to_fit();
        self.sealed = true;
    }

    fn contains(&self, digest: &Digest) -> bool {
        let p = prefix(digest);
        self.sorted.binary_search(&p).is_ok() || self.later.contains(&p)
    }
}

/// The referring records seen so far and the blobs their live ones reference.
#[derive(Default)]
struct Mark {
    seen: HashSet<Path>,
    referenced: Referenced,
}

impl Mark {
    /// Lists the referring records and reads those not seen yet, a few at a time (each is
    /// dropped once its digests are taken).
    async fn look(&mut self, lifecycle: &Lifecycle, now: DateTime<Utc>) -> Result<(), ApiError> {
        let store = &lifecycle.store;
        let mut new: Vec<Path> = referrers::list(store).try_collect().await?;
        new.retain(|path| !self.seen.contains(path));
        let mut read = std::pin::pin!(
            futures::stream::iter(new)
                .map(|path| async move {
                    let refs = referrers::read(store.as_ref(), &path).await?;
                    Ok::<_, ApiError>((path, refs))
                })
                .buffer_unordered(READ_CONCURRENCY)
        );
        while let Some((path, refs)) = read.try_next().await? {
            // An expired record protects nothing: it serves no download any more. A record
            // that expires during the collection was live at the mark, and keeps its blobs.
            if let Some(refs) = refs
                && refs.expires_at > now
            {
                for digest in &refs.digests {
                    self.referenced.add(digest);
                }
            }
            self.seen.insert(path);
        }
        if !self.referenced.sealed {
            self.referenced.seal();
        }
        Ok(())
    }
}

/// One collection; `dry_run` condemns and deletes nothing.
pub(super) async fn collect(lifecycle: &Lifecycle, dry_run: bool) -> Result<Collected, ApiError> {
    let started = lifecycle.clock.now();
    let grace =
        chrono::Duration::from_std(lifecycle.settings.gc_grace).unwrap_or(chrono::Duration::MAX);
    let cutoff = started
        .checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    if !dry_run {
        let removed = lifecycle.condemned.remove_dead().await?;
        if removed > 0 {
            tracing::info!(removed, "removed condemned batches whose collector stopped");
        }
    }
    let mut mark = Mark::default();
    mark.look(lifecycle, started).await?;
    run(&lifecycle.hooks.after_mark).await;

    let mut out = Collected::default();
    let mut listed_bytes = 0u64;
    let mut candidates: Vec<ListedBlob> = Vec::with_capacity(BATCH_SIZE);
    let mut blobs = std::pin::pin!(lifecycle.blobs.list());
    while let Some(blob) = blobs.try_next().await? {
        listed_bytes = listed_bytes.saturating_add(blob.size);
        if mark.referenced.contains(&blob.digest) || blob.last_modified > cutoff {
            out.kept += 1;
            continue;
        }
        candidates.push(blob);
        if candidates.len() == BATCH_SIZE {
            delete_batch(lifecycle, &mut mark, &candidates, dry_run, &mut out).await?;
            candidates.clear();
        }
    }
    if !candidates.is_empty() {
        delete_batch(lifecycle, &mut mark, &candidates, dry_run, &mut out).await?;
    }
    if !dry_run {
        // What this collection saw, less what it deleted: uploads committed meanwhile may be
        // missed until the next count, or counted twice (the cap errs toward refusing).
        lifecycle
            .blobs
            .usage()
            .set_counted(listed_bytes.saturating_sub(out.freed));
    }
    Ok(out)
}

async fn delete_batch(
    lifecycle: &Lifecycle,
    mark: &mut Mark,
    candidates: &[ListedBlob],
    dry_run: bool,
    out: &mut Collected,
) -> Result<(), ApiError> {
    if dry_run {
        for blob in candidates {
            out.record(blob);
        }
        return Ok(());
    }
    let digests: Vec<Digest> = candidates.iter().map(|b| b.digest).collect();
    let batch = lifecycle.condemned.write(&digests).await?;
    run(&lifecycle.hooks.after_condemn).await;
    let deleted = async {
        mark.look(lifecycle, batch.written_at).await?;
        run(&lifecycle.hooks.before_delete).await;
        let doomed: Vec<ListedBlob> = candidates
            .iter()
            .filter(|blob| !mark.referenced.contains(&blob.digest))
            .copied()
            .collect();
        let batch = &batch;
        futures::stream::iter(doomed)
            .map(|blob| async move {
                // Past the lease, readers may stop seeing the batch: stop deleting.
                if !batch.may_delete(lifecycle.clock.now()) {
                    return Ok(None);
                }
                lifecycle.blobs.delete(&blob.digest, blob.size).await?;
                Ok::<_, ApiError>(Some(blob))
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<Option<ListedBlob>>>()
            .await
            .map(|deleted| deleted.into_iter().flatten().collect::<Vec<_>>())
    }
    .await;
    // Removed whatever happened: a batch left behind would hold uploads back until it dies.
    let removed = lifecycle.condemned.remove(batch).await;
    let deleted = deleted?;
    removed?;
    for blob in &deleted {
        out.record(blob);
        tracing::debug!(digest = %blob.digest, size = blob.size, "blob collected");
    }
    out.kept += (candidates.len() - deleted.len()) as u64;
    lifecycle
        .metrics
        .gc_blobs_deleted
        .inc_by(deleted.len() as u64);
    lifecycle
        .metrics
        .gc_bytes_freed
        .inc_by(deleted.iter().map(|b| b.size).sum());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_digests_are_found_before_and_after_the_first_look() {
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let mut referenced = Referenced::default();
        referenced.add(&b);
        referenced.add(&a);
        referenced.add(&b);
        referenced.seal();
        assert_eq!(referenced.sorted.len(), 2);
        assert!(referenced.contains(&a) && referenced.contains(&b));
        assert!(!referenced.contains(&c));
        referenced.add(&c);
        assert!(referenced.contains(&c));
        // A digest that shares the first 64 bits is taken as referenced: kept, never deleted.
        let mut twin = *c.as_bytes();
        twin[31] ^= 1;
        assert!(referenced.contains(&Digest::from_bytes(twin)));
    }
}
