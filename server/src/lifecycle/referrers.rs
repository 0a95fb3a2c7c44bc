//! Records that keep blobs alive: bundle records (`bundles/<id>.json`), kept resolutions
//! (`resolutions/<key>.json`: the jars a `POST /v1/resolve` answer named, kept while a client
//! may still create a bundle from that answer) and source records (`sources/<key>.json`: a
//! remote source's blob, kept `--cache-max-age` after it was last used). Garbage collection
//! marks from all three.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;

use crate::bundle::{BUNDLES_PREFIX, BundleRecord};
use crate::error::ApiError;

/// Where kept resolutions live.
pub const RESOLUTIONS_PREFIX: &str = "resolutions";

/// The jars of one resolution answer, and until when they are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptResolution {
    pub expires_at: DateTime<Utc>,
    pub digests: Vec<Digest>,
}

impl KeptResolution {
    /// The key of the resolution of `request` (its canonical JSON, hashed: no coordinates or
    /// repository URLs in key names).
    pub fn path(request: &impl Serialize) -> Path {
        let json = serde_json::to_vec(request).unwrap_or_default();
        let key = hex::encode(Sha256::digest(&json));
        Path::from(format!("{RESOLUTIONS_PREFIX}/{key}.json"))
    }

    /// Stores it (replacing an earlier answer to the same request).
    pub async fn store(&self, store: &dyn ObjectStore, path: &Path) -> Result<(), ApiError> {
        let json = serde_json::to_vec(self).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put(path, PutPayload::from(json)).await?;
        Ok(())
    }
}

/// What a referring record holds: until when, and which blobs.
#[derive(Debug, Clone)]
pub struct References {
    pub expires_at: DateTime<Utc>,
    pub digests: Vec<Digest>,
}

/// The keys of every referring record, streamed.
pub fn list(
    store: &Arc<dyn ObjectStore>,
) -> impl Stream<Item = Result<Path, object_store::Error>> + use<> {
    let bundles = store.list(Some(&Path::from(BUNDLES_PREFIX)));
    let resolutions = store.list(Some(&Path::from(RESOLUTIONS_PREFIX)));
    let sources = store.list(Some(&Path::from(crate::sources::SOURCES_PREFIX)));
    bundles
        .chain(resolutions)
        .chain(sources)
        .try_filter_map(|meta| async move {
            let name = meta.location.filename().unwrap_or_default();
            Ok(name.ends_with(".json").then_some(meta.location))
        })
}

/// The references of the record at `path`; `None` when it is gone (deleted meanwhile).
pub async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<References>, ApiError> {
    let bytes = match store.get(path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt =
        |e: serde_json::Error| ApiError::Internal(format!("record {path} is corrupt: {e}"));
    if path.prefix_matches(&Path::from(RESOLUTIONS_PREFIX)) {
        let kept: KeptResolution = serde_json::from_slice(&bytes).map_err(corrupt)?;
        return Ok(Some(References {
            expires_at: kept.expires_at,
            digests: kept.digests,
        }));
    }
    if path.prefix_matches(&Path::from(crate::sources::SOURCES_PREFIX)) {
        let source: crate::sources::SourceRecord =
            serde_json::from_slice(&bytes).map_err(corrupt)?;
        return Ok(Some(References {
            expires_at: source.expires_at,
            digests: vec![source.digest],
        }));
    }
    let record: BundleRecord = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some(References {
        expires_at: record.manifest.expires_at,
        digests: record.manifest.entries.iter().map(|e| e.digest).collect(),
    }))
}
