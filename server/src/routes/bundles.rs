//! `POST /v1/bundles`, `GET`/`DELETE /v1/bundles/{id}`, `GET /v1/bundles/{id}/blobs/sha256:<hex>`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use sparkstage_api::Digest;
use sparkstage_api::bundles::{
    BundleManifest, BundleSummary, CreateBundleRequest, CreateBundleResponse, ListBundlesResponse,
    validate_entries,
};
use sparkstage_api::lifecycle::DeleteReason;

use crate::AppState;
use crate::auth::{BearerToken, OptionalBearer, UploadAuth, is_operator};
use crate::bundle::new_bundle;
use crate::error::{ApiError, ApiJson};
use crate::range::{self, RangeSpec};

/// Bundles whose state is read at once for a listing.
const LIST_CONCURRENCY: usize = 32;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/bundles", post(create).get(list))
        .route("/v1/bundles/{id}", get(manifest).delete(delete))
        .route("/v1/bundles/{id}/blobs/{digest}", get(download))
}

async fn create(
    State(state): State<AppState>,
    _auth: UploadAuth,
    ApiJson(request): ApiJson<CreateBundleRequest>,
) -> Result<(StatusCode, Json<CreateBundleResponse>), ApiError> {
    let created = create_bundle(&state, request).await?;
    let status = match created.pending {
        0 => StatusCode::CREATED,
        _ => StatusCode::ACCEPTED,
    };
    Ok((status, Json(created)))
}

/// Creates the bundle `request` describes, once every blob it names is stored with the size it
/// declares (the v1 route and the fork's v0 upload). With source entries the bundle is answered
/// at once and completed when they are stored (`crate::pending`).
pub(crate) async fn create_bundle(
    state: &AppState,
    request: CreateBundleRequest,
) -> Result<CreateBundleResponse, ApiError> {
    let settings = &state.settings;
    let entries = request.entries;
    let sources = crate::pending::named(request.sources)?;
    let all = entries.len() + sources.len();
    if all == 0 {
        return Err(ApiError::bad_request(
            "empty_bundle",
            "the bundle has no entries; list at least one blob",
        ));
    }
    if all > settings.max_bundle_entries {
        return Err(ApiError::bad_request(
            "too_many_entries",
            format!(
                "the bundle has {all} entries; this server allows at most {}",
                settings.max_bundle_entries
            ),
        ));
    }
    // Names and kinds of all entries, the sources' with a stand-in digest.
    let mut every = entries.clone();
    every.extend(sources.iter().map(crate::pending::stand_in));
    validate_entries(&every)?;
    let ttl = match &request.ttl {
        None => settings.default_ttl,
        Some(text) => parse_ttl(text, settings.max_ttl)?,
    };
    let new = new_bundle(entries, request.owner, state.clock.now(), ttl)?;
    let manifest = &new.record.manifest;
    let answer = CreateBundleResponse {
        id: manifest.id.clone(),
        token: new.token.clone(),
        expires_at: manifest.expires_at,
        pending: sources.len(),
    };
    if sources.is_empty() {
        commit(state, &new.record).await?;
    } else {
        crate::pending::start(state, new.record, sources).await?;
    }
    Ok(answer)
}

/// Stores `record` once every blob it names is stored with the size it declares: the record
/// first, then the check of its blobs (the order garbage collection's safety rests on, see
/// `crate::lifecycle::gc`); a failed check takes the record back.
pub(crate) async fn commit(
    state: &AppState,
    record: &crate::bundle::BundleRecord,
) -> Result<(), ApiError> {
    let entries = &record.manifest.entries;
    let mut declared: HashMap<Digest, (u64, &str)> = HashMap::new();
    for entry in entries {
        if let Some((size, name)) = declared.insert(entry.digest, (entry.size, &entry.name))
            && size != entry.size
        {
            return Err(ApiError::bad_request(
                "size_mismatch",
                format!(
                    "entries {name:?} and {:?} name the same blob {} with different sizes \
                     ({size} and {})",
                    entry.name, entry.digest, entry.size
                ),
            ));
        }
    }
    let wanted: HashMap<Digest, u64> = declared.iter().map(|(d, (s, _))| (*d, *s)).collect();
    state.bundles.insert(record).await?;
    let unclaimed = match state.lifecycle.check(&wanted).await {
        Ok(u) => u,
        Err(e) => {
            state.bundles.remove(record.id()).await?;
            return Err(e);
        }
    };
    if !unclaimed.is_empty() {
        state.bundles.remove(record.id()).await?;
        if let Some((digest, size)) = unclaimed.wrong_size.first() {
            let want = wanted.get(digest).copied().unwrap_or_default();
            let name = entries
                .iter()
                .find(|e| e.digest == *digest)
                .map_or("", |e| e.name.as_str());
            return Err(ApiError::bad_request(
                "size_mismatch",
                format!(
                    "entry {name:?} declares {want} bytes but the stored blob {digest} has {size} bytes"
                ),
            ));
        }
        // In manifest order, without duplicates, so the answer is stable.
        let mut seen = HashSet::new();
        let missing = entries
            .iter()
            .map(|e| e.digest)
            .filter(|d| unclaimed.missing.contains(d) && seen.insert(*d))
            .collect();
        return Err(ApiError::MissingBlobs(missing));
    }
    let manifest = &record.manifest;
    tracing::info!(
        bundle = %manifest.id,
        entries = manifest.entries.len(),
        expires_at = %manifest.expires_at,
        "bundle created"
    );
    Ok(())
}

fn parse_ttl(text: &str, max: Duration) -> Result<Duration, ApiError> {
    let ttl = humantime::parse_duration(text).map_err(|e| {
        ApiError::bad_request(
            "bad_ttl",
            format!("ttl {text:?} is not a duration ({e}); write for example \"2h\" or \"7d\""),
        )
    })?;
    if ttl.is_zero() || ttl > max {
        return Err(ApiError::bad_request(
            "bad_ttl",
            format!(
                "ttl {text:?} must be more than zero and at most {}",
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(ttl)
}

async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    BearerToken(token): BearerToken,
) -> Result<Json<BundleManifest>, ApiError> {
    let record = crate::auth::open_bundle(&state, &id, &token).await?;
    // A pod reads the manifest first: that is the bundle's download, for the lifecycle.
    state.bundles.mark_downloaded(record.id()).await?;
    Ok(Json(record.manifest.clone()))
}

async fn list(
    State(state): State<AppState>,
    _auth: UploadAuth,
) -> Result<Json<ListBundlesResponse>, ApiError> {
    let records = state.bundles.list().await?;
    let bundles = futures::stream::iter(records)
        .map(|r| {
            let lifecycle = Arc::clone(&state.lifecycle);
            async move {
                let summary = BundleSummary::of(&r.manifest, lifecycle.state(&r).await?);
                Ok::<_, ApiError>(summary)
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Json(ListBundlesResponse { bundles }))
}

/// With the bundle's token, or as an operator (the upload token, or none on a server without
/// one).
async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBearer(token): OptionalBearer,
) -> Result<StatusCode, ApiError> {
    if is_operator(&state, token.as_deref()) {
        state.bundles.delete_unchecked(&id).await?;
    } else if let Some(token) = token {
        state.bundles.delete(&id, &token).await?;
    } else {
        return Err(ApiError::Unauthorized(
            "deleting a bundle needs its token or the upload token",
        ));
    }
    state.metrics.bundle_deleted(DeleteReason::Deleted);
    tracing::info!(bundle = %id, "bundle deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn download(
    State(state): State<AppState>,
    Path((id, digest)): Path<(String, String)>,
    BearerToken(token): BearerToken,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let record = crate::auth::open_bundle(&state, &id, &token).await?;
    let digest: Digest = digest.parse()?;
    serve_entry(&state, &record, &digest, &headers, started).await
}

/// The blob `digest` of the opened bundle `record`, whole or the range `headers` ask for
/// (`If-None-Match`, `Range`, `If-Range`), under the download budget.
pub(crate) async fn serve_entry(
    state: &AppState,
    record: &crate::bundle::BundleRecord,
    digest: &Digest,
    headers: &HeaderMap,
    started: Instant,
) -> Result<Response, ApiError> {
    let id = record.id();
    let digest = *digest;
    let entry = record
        .manifest
        .entries
        .iter()
        .find(|e| e.digest == digest)
        .ok_or(ApiError::BlobNotInBundle(digest))?;
    let etag = format!("\"{digest}\"");
    let header_str = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let size = entry.size;
    let spec = range::resolve(
        header_str(header::RANGE),
        header_str(header::IF_RANGE),
        &etag,
        size,
    );
    let requested = match spec {
        RangeSpec::Full => None,
        RangeSpec::Partial(r) => Some(r),
        RangeSpec::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    let Some(blob) = state.blobs.download(&digest, requested.clone()).await? else {
        return Err(ApiError::Internal(format!(
            "bundle {id} lists {digest} but the blob is not in the storage"
        )));
    };
    let length = blob.range.end - blob.range.start;
    let body = Body::from_stream(CountedStream {
        inner: blob.stream,
        sent: state.metrics.bytes_sent.clone(),
        duration: state.metrics.download_duration.clone(),
        started,
        remaining: length,
    });
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        );
    response = match requested {
        Some(_) => response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                blob.range.start,
                blob.range.end - 1,
                blob.size
            ),
        ),
        None => response.status(StatusCode::OK),
    };
    response
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Counts sent bytes, and records the download's duration when its last byte has been read.
struct CountedStream {
    inner: futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    sent: Counter,
    duration: Histogram,
    started: Instant,
    remaining: u64,
}

impl futures::Stream for CountedStream {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &polled {
            let n = chunk.len() as u64;
            self.sent.inc_by(n);
            self.remaining = self.remaining.saturating_sub(n);
            if self.remaining == 0 {
                self.duration.observe(self.started.elapsed().as_secs_f64());
            }
        }
        polled
    }
}
