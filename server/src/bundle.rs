//! Bundle records: an application's manifest, its owner, its expiry and the hash of its token,
//! stored as `bundles/<id>.json` in the same object store as the blobs, so every replica on one
//! bucket serves every bundle and a restart loses nothing.
//!
//! The first time a pod reads a bundle's manifest, `access/<id>` records when (the lifecycle
//! deletes bundles never downloaded, see [`crate::lifecycle`]); it goes with the record.
//!
//! Tokens are 256 random bits, shown once at creation, stored only as their sha256 and compared
//! in constant time. An unknown id, an expired or deleted bundle and a wrong token all answer the
//! same [`ApiError::BundleNotFound`], so a caller cannot tell them apart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sparkstage_api::bundles::{BUNDLE_LABEL, BundleEntry, BundleManifest, Owner};
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;
use crate::error::ApiError;

/// What is stored for a bundle: the manifest clients see, and the hash of its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    pub manifest: BundleManifest,
    /// Hex sha256 of the bundle token.
    pub token_sha256: String,
}

impl BundleRecord {
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    pub(crate) fn accepts(&self, token: &str, now: DateTime<Utc>) -> bool {
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        let token_ok: bool = presented
            .as_bytes()
            .ct_eq(self.token_sha256.as_bytes())
            .into();
        token_ok && now < self.manifest.expires_at
    }
}

/// A new bundle's id and its token, before storing.
pub struct NewBundle {
    pub record: BundleRecord,
    pub token: String,
}

/// Random 128-bit id and 256-bit token, both lowercase hex.
pub fn new_bundle(
    entries: Vec<BundleEntry>,
    owner: Option<Owner>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<NewBundle, ApiError> {
    let mut rng = rand::rng();
    let mut id = [0u8; 16];
    let mut token = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut token);
    let token = hex::encode(token);
    let id = hex::encode(id);
    // Owner tracking finds the bundle's pods by this label (see `crate::lifecycle::owners`).
    let owner = owner.map(|mut owner| {
        if owner.namespace.is_some() {
            owner.labels.insert(BUNDLE_LABEL.to_owned(), id.clone());
        }
        owner
    });
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| ApiError::bad_request("bad_ttl", "the ttl is too long"))?;
    Ok(NewBundle {
        record: BundleRecord {
            manifest: BundleManifest {
                id,
                entries,
                owner,
                created_at: now,
                expires_at: now + ttl,
            },
            token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
        },
        token,
    })
}

pub use sparkstage_api::bundles::is_bundle_id;

/// Stores and finds bundle records, with a small in-memory cache: executors of one application
/// all ask for the same bundle at once.
#[derive(Debug)]
pub struct Bundles {
    store: Arc<dyn ObjectStore>,
    cache: Mutex<HashMap<String, (Instant, Arc<BundleRecord>)>>,
    cache_ttl: Duration,
    clock: SharedClock,
    /// Bundles whose first download this replica has recorded (or seen recorded).
    downloaded: Mutex<HashSet<String>>,
}

/// Cached records beyond this count are dropped, oldest first.
const CACHE_CAPACITY: usize = 4096;
/// Remembered first downloads beyond this count are forgotten (and recorded again: harmless).
const DOWNLOADED_CAPACITY: usize = 100_000;

/// Where bundle records live in the store.
pub const BUNDLES_PREFIX: &str = "bundles";
/// Where first downloads are recorded.
pub const ACCESS_PREFIX: &str = "access";

/// The id in a record's key `bundles/<id>.json`.
pub fn id_of(path: &Path) -> Option<String> {
    path.filename()
        .and_then(|f| f.strip_suffix(".json"))
        .filter(|id| is_bundle_id(id))
        .filter(|id| Bundles::path(id) == *path)
        .map(str::to_owned)
}

impl Bundles {
    pub fn new(store: Arc<dyn ObjectStore>, cache_ttl: Duration, clock: SharedClock) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
            cache_ttl,
            clock,
            downloaded: Mutex::new(HashSet::new()),
        }
    }

    pub fn path(id: &str) -> Path {
        Path::from(format!("{BUNDLES_PREFIX}/{id}.json"))
    }

    fn access_path(id: &str) -> Path {
        Path::from(format!("{ACCESS_PREFIX}/{id}"))
    }

    /// The ids of every stored record, expired or not, streamed from the listing.
    pub fn ids(&self) -> impl futures::Stream<Item = Result<String, object_store::Error>> + use<> {
        self.store
            .list(Some(&Path::from(BUNDLES_PREFIX)))
            .try_filter_map(|meta| async move { Ok(id_of(&meta.location)) })
    }

    /// Records that the bundle `id` was downloaded, once: the first call stores the time, later
    /// ones (here or on another replica) find it stored.
    pub async fn mark_downloaded(&self, id: &str) -> Result<(), ApiError> {
        if self
            .downloaded
            .lock()
            .map(|d| d.contains(id))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let now = self.clock.now().to_rfc3339();
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&Self::access_path(id), PutPayload::from(now), options)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut downloaded) = self.downloaded.lock() {
            if downloaded.len() >= DOWNLOADED_CAPACITY {
                downloaded.clear();
            }
            downloaded.insert(id.to_owned());
        }
        Ok(())
    }

    /// When the bundle `id` was first downloaded; `None`: never.
    pub async fn first_download(&self, id: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let bytes = match self.store.get(&Self::access_path(id)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8_lossy(&bytes);
        Ok(DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Stores a new record; ids are random, so an existing one is a bug, not a conflict.
    pub async fn insert(&self, record: &BundleRecord) -> Result<(), ApiError> {
        let json = serde_json::to_vec(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&Self::path(record.id()), PutPayload::from(json), options)
            .await?;
        Ok(())
    }

    /// The bundle `id` if `token` opens it and it has not expired.
    pub async fn authorize(&self, id: &str, token: &str) -> Result<Arc<BundleRecord>, ApiError> {
        match self.find(id).await? {
            Some(record) if record.accepts(token, self.clock.now()) => Ok(record),
            _ => Err(ApiError::BundleNotFound),
        }
    }

    /// The bundle `id`, whoever asks, if it exists and has not expired (through the short cache
    /// that downloads use).
    pub async fn find(&self, id: &str) -> Result<Option<Arc<BundleRecord>>, ApiError> {
        if !is_bundle_id(id) {
            return Ok(None);
        }
        let record = match self.cached(id) {
            Some(r) => r,
            None => {
                let Some(record) = self.load(id).await? else {
                    return Ok(None);
                };
                self.remember(record)
            }
        };
        Ok((self.clock.now() < record.manifest.expires_at).then_some(record))
    }

    /// Deletes the bundle `id` when `token` opens it.
    pub async fn delete(&self, id: &str, token: &str) -> Result<(), ApiError> {
        self.authorize(id, token).await?;
        self.remove(id).await
    }

    /// Deletes the bundle `id` on an operator's request (upload token); 404 when there is none.
    pub async fn delete_unchecked(&self, id: &str) -> Result<(), ApiError> {
        if !is_bundle_id(id) || self.load(id).await?.is_none() {
            return Err(ApiError::BundleNotFound);
        }
        self.remove(id).await
    }

    /// Every record not yet expired, oldest first.
    pub async fn list(&self) -> Result<Vec<BundleRecord>, ApiError> {
        let ids: Vec<String> = self.ids().try_collect().await?;
        let now = self.clock.now();
        let records: Vec<Option<BundleRecord>> = futures::stream::iter(ids)
            .map(|id| async move { self.load(&id).await })
            .buffer_unordered(32)
            .try_collect()
            .await?;
        let mut out: Vec<BundleRecord> = records
            .into_iter()
            .flatten()
            .filter(|r| r.manifest.expires_at > now)
            .collect();
        out.sort_by(|a, b| (a.manifest.created_at, a.id()).cmp(&(b.manifest.created_at, b.id())));
        Ok(out)
    }

    /// Deletes the record `id` and its first-download mark; one that is already gone is not an
    /// error (another replica's sweep may have been first).
    pub async fn remove(&self, id: &str) -> Result<(), ApiError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        for path in [Self::path(id), Self::access_path(id)] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Ok(mut downloaded) = self.downloaded.lock() {
            downloaded.remove(id);
        }
        Ok(())
    }

    /// The record `id`, expired or not; `None` when there is none.
    pub async fn load(&self, id: &str) -> Result<Option<BundleRecord>, ApiError> {
        let bytes = match self.store.get(&Self::path(id)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("bundle record {id} is corrupt: {e}")))
    }

    fn cached(&self, id: &str) -> Option<Arc<BundleRecord>> {
        let cache = self.cache.lock().ok()?;
        let (at, record) = cache.get(id)?;
        (at.elapsed() < self.cache_ttl).then(|| Arc::clone(record))
    }

    fn remember(&self, record: BundleRecord) -> Arc<BundleRecord> {
        let record = Arc::new(record);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                let ttl = self.cache_ttl;
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(
                record.id().to_owned(),
                (Instant::now(), Arc::clone(&record)),
            );
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn token_opens_only_its_bundle_until_expiry() -> Result<(), ApiError> {
        let bundles = Bundles::new(
            Arc::new(InMemory::new()),
            Duration::from_secs(5),
            Arc::new(crate::clock::SystemClock),
        );
        let now = Utc::now();
        let a = new_bundle(vec![], None, now, Duration::from_secs(3600))?;
        let b = new_bundle(vec![], None, now, Duration::from_secs(3600))?;
        assert_eq!(a.token.len(), 64, "256 bits in hex");
        assert_ne!(a.token, b.token);
        bundles.insert(&a.record).await?;
        bundles.insert(&b.record).await?;
        assert!(bundles.authorize(a.record.id(), &a.token).await.is_ok());
        for (id, token) in [
            (a.record.id(), b.token.as_str()),
            ("0123456789abcdef0123456789abcdef", a.token.as_str()),
            ("../../etc/passwd", a.token.as_str()),
            (a.record.id(), ""),
        ] {
            assert!(matches!(
                bundles.authorize(id, token).await,
                Err(ApiError::BundleNotFound)
            ));
        }
        let stored = bundles.load(a.record.id()).await?.map(|r| r.token_sha256);
        assert_eq!(stored, Some(a.record.token_sha256.clone()));
        assert!(!a.record.token_sha256.contains(&a.token));
        assert!(a.record.accepts(&a.token, now));
        assert!(!a.record.accepts(&a.token, a.record.manifest.expires_at));
        bundles.delete(a.record.id(), &a.token).await?;
        assert!(matches!(
            bundles.authorize(a.record.id(), &a.token).await,
            Err(ApiError::BundleNotFound)
        ));
        Ok(())
    }
}
