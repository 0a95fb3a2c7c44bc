//! The lifecycle: what sparkstage deletes, and when.
//!
//! - [`sweep`]: bundle records whose ttl passed, or whose owner is gone (with owner tracking),
//!   every `--sweep-interval`;
//! - [`gc`]: blobs that nothing live references, older than `--gc-grace`, every
//!   `--gc-interval`, safe against bundles being created on any replica meanwhile (the argument
//!   is in its documentation);
//! - [`owners`]: what owner tracking tells about a bundle's pods, and [`kube_owners`] its
//!   Kubernetes watch;
//! - [`condemned`]: the batches of blobs a collection is about to delete, which writers check;
//! - [`referrers`]: the records that keep blobs alive (bundles, kept resolutions).
//!
//! The run loop ([`Lifecycle::spawn`]) is started by `main`; `POST /v1/gc` (`sparkstage gc`)
//! runs one sweep and one collection at once. One of them runs at a time on a replica; several
//! replicas may run theirs together. Time comes from the injected clock ([`crate::clock`]).

pub mod condemned;
pub mod gc;
pub mod kube_owners;
pub mod owners;
pub mod referrers;
pub mod sweep;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use sparkstage_api::Digest;
use sparkstage_api::lifecycle::GcResponse;

use crate::blob_store::BlobStore;
use crate::bundle::Bundles;
use crate::clock::SharedClock;
use crate::error::ApiError;
use crate::metrics::Metrics;
use condemned::Condemned;
use gc::Hooks;
use owners::Owners;

/// The lifecycle's flags.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    pub sweep_interval: Duration,
    pub gc_interval: Duration,
    pub gc_grace: Duration,
    pub initial_access_timeout: Duration,
    pub owner_grace: Duration,
    /// Bytes of sources' blobs kept by their records alone; past it the least recently used
    /// records go first (`None`: only `--cache-max-age` applies).
    pub cache_max_size: Option<u64>,
    /// The shared Maven cache's POMs and metadata (`crate::maven_cache`) are deleted this long
    /// after they were written (`--cache-max-age`).
    pub cache_max_age: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(30),
            gc_interval: Duration::from_secs(600),
            gc_grace: Duration::from_secs(3600),
            initial_access_timeout: Duration::from_secs(1800),
            owner_grace: Duration::from_secs(300),
            cache_max_size: None,
            cache_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug)]
pub struct Lifecycle {
    store: Arc<dyn ObjectStore>,
    blobs: BlobStore,
    bundles: Arc<Bundles>,
    condemned: Condemned,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    settings: LifecycleSettings,
    owners: Arc<dyn Owners>,
    hooks: Hooks,
    /// One sweep or collection at a time on this replica.
    running: tokio::sync::Mutex<()>,
    /// What the sweep read of each record (records never change).
    known: Mutex<HashMap<String, Arc<sweep::Facts>>>,
}

/// What a writer's check found wrong with the blobs its record names.
#[derive(Debug, Default)]
pub struct Unclaimed {
    /// Not stored, or condemned by a collection: to upload again.
    pub missing: HashSet<Digest>,
    /// Stored with another size than the record says: (digest, stored size).
    pub wrong_size: Vec<(Digest, u64)>,
}

impl Unclaimed {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.wrong_size.is_empty()
    }
}

/// Existence checks of one request at once.
const HEAD_CONCURRENCY: usize = 32;

impl Lifecycle {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn ObjectStore>,
        blobs: BlobStore,
        bundles: Arc<Bundles>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        settings: LifecycleSettings,
        owners: Arc<dyn Owners>,
    ) -> Self {
        Self {
            condemned: Condemned::new(Arc::clone(&store), Arc::clone(&clock)),
            store,
            blobs,
            bundles,
            clock,
            metrics,
            settings,
            owners,
            hooks: Hooks::default(),
            running: tokio::sync::Mutex::new(()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The same, with test hooks in the collection.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    pub fn settings(&self) -> &LifecycleSettings {
        &self.settings
    }

    pub fn condemned(&self) -> &Condemned {
        &self.condemned
    }

    /// The injected clock's time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Stores a kept resolution (a referring record: check its blobs after).
    pub async fn keep_resolution(
        &self,
        path: &object_store::path::Path,
        kept: &referrers::KeptResolution,
    ) -> Result<(), ApiError> {
        kept.store(self.store.as_ref(), path).await
    }

    /// Which of `digests` cannot be counted on (condemned by a collection, or not stored), and
    /// the stored size of the others. Condemned batches are read first, then the blobs, in that
    /// order (the writer's check of [`gc`] rests on it).
    pub async fn unavailable(
        &self,
        digests: &[Digest],
    ) -> Result<(HashSet<Digest>, HashMap<Digest, u64>), ApiError> {
        let mut missing = self.condemned.which(digests).await?;
        let blobs = &self.blobs;
        let sizes: Vec<(Digest, Option<u64>)> = futures::stream::iter(digests.iter().copied())
            .map(|d| async move { blobs.size(&d).await.map(|s| (d, s)) })
            .buffer_unordered(HEAD_CONCURRENCY)
            .try_collect()
            .await?;
        let mut stored = HashMap::new();
        for (digest, size) in sizes {
            match size {
                None => {
                    missing.insert(digest);
                }
                Some(size) if !missing.contains(&digest) => {
                    stored.insert(digest, size);
                }
                Some(_) => {}
            }
        }
        Ok((missing, stored))
    }

    /// The writer's check ([`gc`]): after its record is stored, which of `wanted` (digest and
    /// size) are condemned, missing or of another size.
    pub async fn check(&self, wanted: &HashMap<Digest, u64>) -> Result<Unclaimed, ApiError> {
        let digests: Vec<Digest> = wanted.keys().copied().collect();
        let (missing, stored) = self.unavailable(&digests).await?;
        let wrong_size = stored
            .into_iter()
            .filter(|(digest, size)| wanted.get(digest) != Some(size))
            .collect();
        Ok(Unclaimed {
            missing,
            wrong_size,
        })
    }

    /// One sweep and one collection, now (`POST /v1/gc`); `dry_run` deletes nothing.
    pub async fn run_once(&self, dry_run: bool) -> Result<GcResponse, ApiError> {
        let _running = self.running.lock().await;
        let bundles = self.sweep_records(dry_run).await?;
        let collected = self.timed_collect(dry_run).await?;
        let usage = self.blobs.usage();
        Ok(GcResponse {
            dry_run,
            bundles,
            blobs: collected.blobs,
            blobs_deleted: collected.deleted,
            bytes_freed: collected.freed,
            blobs_kept: collected.kept,
            storage_used: usage.used(),
            max_storage: usage.cap(),
        })
    }

    async fn timed_collect(&self, dry_run: bool) -> Result<gc::Collected, ApiError> {
        let started = Instant::now();
        let collected = gc::collect(self, dry_run).await;
        if !dry_run {
            self.metrics
                .gc_duration
                .observe(started.elapsed().as_secs_f64());
        }
        let collected = collected?;
        tracing::info!(
            dry_run,
            deleted = collected.deleted,
            freed = collected.freed,
            kept = collected.kept,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "garbage collection done"
        );
        Ok(collected)
    }

    /// The run loop: a sweep every `--sweep-interval`, a collection every `--gc-interval` (the
    /// first one interval after start), and the count of stored bytes at start. Failures are
    /// logged and tried again at the next tick.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            match self.blobs.count_usage().await {
                Ok(bytes) => tracing::info!(bytes, "counted the stored blobs"),
                Err(e) => tracing::error!(error = %e, "cannot count the stored blobs"),
            }
            let mut sweeps = tokio::time::interval(self.settings.sweep_interval);
            sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let gc_every = self.settings.gc_interval;
            let mut collections =
                tokio::time::interval_at(tokio::time::Instant::now() + gc_every, gc_every);
            collections.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = sweeps.tick() => {
                        let _running = self.running.lock().await;
                        if let Err(e) = self.sweep_records(false).await {
                            tracing::error!(error = ?e, "sweep failed; trying again next time");
                        }
                    }
                    _ = collections.tick() => {
                        let _running = self.running.lock().await;
                        if let Err(e) = self.timed_collect(false).await {
                            tracing::error!(error = ?e, "garbage collection failed; trying again next time");
                        }
                    }
                }
            }
        })
    }
}
