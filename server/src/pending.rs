//! Bundles with source entries (issue 13): answered at once, completed in the background when
//! every source is stored (`crate::sources`), served when complete.
//!
//! A pending bundle is `pending/<id>.json` in the store: its record as it will be (the token's
//! hash included) and its sources, named. The replica that created it fetches them; a manifest
//! or blob request for it on any replica (with its token, or with pod identity a pod's of its
//! namespace) waits for the record, and completes it itself when no completion runs in this
//! replica (another replica's, or one a restart stopped: the sources' records make the second
//! completion cheap). A failed source makes the marker carry the error, and every waiter gets
//! it, naming the source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sparkstage_api::Digest;
use sparkstage_api::bundles::{BundleEntry, SourceEntry};

use crate::AppState;
use crate::bundle::BundleRecord;
use crate::error::ApiError;

/// How long a request waits for a pending bundle.
pub const WAIT: Duration = Duration::from_secs(600);
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(200);
/// Sources fetched at once for one bundle.
const FETCHES: usize = 4;

/// A source entry with its name settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedSource {
    pub name: String,
    pub kind: sparkstage_api::bundles::EntryKind,
    pub source: String,
    pub digest: Option<Digest>,
}

/// What the store keeps of a pending bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingBundle {
    pub record: BundleRecord,
    pub sources: Vec<NamedSource>,
    /// Why it could not be completed, and when: waiters get it for the sources' error ttl,
    /// then the completion is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The source entries with their names: given, else the URL's last path segment.
pub fn named(sources: Vec<SourceEntry>) -> Result<Vec<NamedSource>, ApiError> {
    sources
        .into_iter()
        .map(|s| {
            let url = crate::sources::normalize(&s.source)?;
            let name = match s.name {
                Some(name) => name,
                None => url
                    .path_segments()
                    .and_then(|mut segments| segments.next_back())
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "bad_source",
                            format!(
                                "{}: no file name in the URL; give the entry a name",
                                sparkstage_api::shown::url(&url)
                            ),
                        )
                    })?,
            };
            Ok(NamedSource {
                name,
                kind: s.kind,
                source: url.to_string(),
                digest: s.digest,
            })
        })
        .collect()
}

/// A source as an entry for checking names and kinds (its digest and size are not known yet).
pub fn stand_in(source: &NamedSource) -> BundleEntry {
    BundleEntry {
        name: source.name.clone(),
        digest: source.digest.unwrap_or(Digest::from_bytes([0; 32])),
        size: 0,
        kind: source.kind,
    }
}

/// Where pending bundles live.
pub const PENDING_PREFIX: &str = "pending";

fn path(id: &str) -> Path {
    Path::from(format!("{PENDING_PREFIX}/{id}.json"))
}

async fn load(state: &AppState, id: &str) -> Result<Option<PendingBundle>, ApiError> {
    crate::storage::read_json(state.store.as_ref(), &path(id)).await
}

async fn save(state: &AppState, pending: &PendingBundle) -> Result<(), ApiError> {
    let json = serde_json::to_vec(pending).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .put(&path(pending.record.id()), PutPayload::from(json))
        .await?;
    Ok(())
}

/// The completions running in this replica.
fn running() -> &'static Mutex<HashSet<String>> {
    static RUNNING: std::sync::OnceLock<Mutex<HashSet<String>>> = std::sync::OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Stores the pending bundle and starts completing it.
pub async fn start(
    state: &AppState,
    record: BundleRecord,
    sources: Vec<NamedSource>,
) -> Result<(), ApiError> {
    let pending = PendingBundle {
        record,
        sources,
        error: None,
        failed_at: None,
    };
    save(state, &pending).await?;
    spawn_completion(state, pending);
    Ok(())
}

fn spawn_completion(state: &AppState, pending: PendingBundle) {
    let id = pending.record.id().to_owned();
    {
        let mut running = running().lock().unwrap_or_else(|e| e.into_inner());
        if !running.insert(id.clone()) {
            return;
        }
    }
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = complete(&state, pending).await {
            tracing::warn!(bundle = %id, error = %e, "a pending bundle could not be completed");
        }
        running()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    });
}

/// Every source of a pending bundle, stored: its entries.
async fn fetch_all(
    state: &AppState,
    sources: &[NamedSource],
) -> Result<Vec<BundleEntry>, ApiError> {
    futures::stream::iter(sources.to_vec())
        .map(|source| {
            let sources = Arc::clone(&state.sources);
            async move {
                let (digest, size) = sources.get(&source.source, source.digest).await?;
                Ok::<_, ApiError>(BundleEntry {
                    name: source.name,
                    digest,
                    size,
                    kind: source.kind,
                })
            }
        })
        .buffered(FETCHES)
        .try_collect()
        .await
}

/// Fetches every source, then commits the record (or records the error on the marker). A
/// source's blob that a garbage collection took between its record's read and the commit
/// (the record outlived by its blob) is fetched again, once.
async fn complete(state: &AppState, mut pending: PendingBundle) -> Result<(), ApiError> {
    let mut outcome = Err(ApiError::Internal("not tried".to_owned()));
    for _ in 0..2 {
        outcome = match fetch_all(state, &pending.sources).await {
            Ok(entries) => {
                let mut record = pending.record.clone();
                record.manifest.entries.extend(entries);
                crate::routes::bundles::commit(state, &record).await
            }
            Err(e) => Err(e),
        };
        if !matches!(outcome, Err(ApiError::MissingBlobs(_))) {
            break;
        }
    }
    match outcome {
        Ok(()) => {
            crate::storage::delete_quietly(state.store.as_ref(), &path(pending.record.id())).await
        }
        // Another replica completed it meanwhile: its marker is gone, and stays gone.
        Err(_) if state.bundles.find(pending.record.id()).await?.is_some() => {
            crate::storage::delete_quietly(state.store.as_ref(), &path(pending.record.id())).await
        }
        Err(e) => {
            pending.error = Some(e.to_string());
            pending.failed_at = Some(state.clock.now());
            save(state, &pending).await?;
            Err(e)
        }
    }
}

/// The pending bundle `id`, if there is one.
pub async fn find(state: &AppState, id: &str) -> Result<Option<PendingBundle>, ApiError> {
    if !sparkstage_api::bundles::is_bundle_id(id) {
        return Ok(None);
    }
    load(state, id).await
}

/// The bundle of the pending bundle `pending` (found with [`find`], and opened by the
/// caller) once complete: waits (at most [`WAIT`]), completing it here when no completion runs
/// in this replica. `Ok(None)`: it is gone (taken back), as an unknown bundle.
pub async fn wait(
    state: &AppState,
    pending: PendingBundle,
) -> Result<Option<Arc<BundleRecord>>, ApiError> {
    let id = pending.record.id().to_owned();
    let id = id.as_str();
    let started = tokio::time::Instant::now();
    let mut pending = Some(pending);
    loop {
        if let Some(record) = state.bundles.find(id).await? {
            return Ok(Some(record));
        }
        if let Some(mut marker) = pending.take() {
            let error_ttl = chrono::Duration::from_std(state.sources.error_ttl())
                .unwrap_or(chrono::Duration::zero());
            match (&marker.error, marker.failed_at) {
                (Some(error), Some(at)) if state.clock.now() < at + error_ttl => {
                    return Err(ApiError::Upstream(error.clone()));
                }
                _ => {
                    marker.error = None;
                    marker.failed_at = None;
                    spawn_completion(state, marker);
                }
            }
        }
        if started.elapsed() >= WAIT {
            return Err(ApiError::Upstream(format!(
                "bundle {id}: its sources are still being fetched after {}; try again",
                humantime::format_duration(WAIT)
            )));
        }
        tokio::time::sleep(POLL).await;
        pending = load(state, id).await?;
        if pending.is_none() {
            // The marker goes after the record is committed: the record, or (taken back) none,
            // as an unknown bundle.
            return state.bundles.find(id).await;
        }
    }
}
