//! `PUT /v1/blobs/sha256:<hex>`, `HEAD /v1/blobs/sha256:<hex>`, `POST /v1/blobs/missing`.

use std::collections::HashSet;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use sparkstage_api::Digest;
use sparkstage_api::blobs::{FindMissingRequest, FindMissingResponse, PutBlobResponse};

use crate::AppState;
use crate::auth::UploadAuth;
use crate::blob_store::PutOutcome;
use crate::error::{ApiError, ApiJson};
use crate::metrics::UploadLabels;
use crate::request_body::{drain, idle_limited};

/// The upload route: no body limit of axum's (the blob size limit applies) and no deadline
/// (the body idle timeout applies).
pub fn upload_router() -> Router<AppState> {
    Router::new().route(
        "/v1/blobs/{digest}",
        put(put_blob)
            .head(head_blob)
            .layer(axum::extract::DefaultBodyLimit::disable()),
    )
}

/// The JSON routes of blobs.
pub fn bounded_router() -> Router<AppState> {
    Router::new().route("/v1/blobs/missing", post(find_missing))
}

async fn put_blob(
    State(state): State<AppState>,
    _auth: UploadAuth,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let digest: Digest = digest.parse()?;
    let declared = content_length(&headers)?;
    let received = state.metrics.bytes_received.clone();
    let idle = state.settings.body_idle_timeout;
    // Fused: what `put` left is drained below, and a body that ended must not be polled again.
    let mut body = std::pin::pin!(
        idle_limited(body, idle, None)
            .inspect_ok(move |chunk| {
                received.inc_by(chunk.len() as u64);
            })
            .fuse()
    );
    let limit = state.settings.max_blob_size;
    // A blob that a garbage collection is deleting right now is stored anew once it is done.
    state.lifecycle.condemned().wait_until_free(&digest).await?;
    let outcome = state
        .blobs
        .put(&digest, declared, limit, body.as_mut())
        .await;
    // What the client still sends is read and dropped, so that it sees this answer: all of it
    // for a blob already stored (a success), a little for an error. A client that waits for
    // `100 Continue` has sent nothing yet and sends nothing more.
    if !expects_continue(&headers) {
        match &outcome {
            Ok(PutOutcome::Existing { .. }) => {
                drain(body, limit, None).await;
            }
            Ok(PutOutcome::Created { .. }) => {}
            Err(_) => {
                drain(body, LINGER_BYTES, Some(LINGER_TIME)).await;
            }
        }
    }
    let result = match &outcome {
        Ok(PutOutcome::Created { .. }) => "created",
        Ok(PutOutcome::Existing { .. }) => "existing",
        Err(_) => "rejected",
    };
    state
        .metrics
        .uploads
        .get_or_create(&UploadLabels { result })
        .inc();
    let (status, size, created) = match outcome? {
        PutOutcome::Created { size } => {
            state
                .metrics
                .upload_duration
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(%digest, size, "blob stored");
            (StatusCode::CREATED, size, true)
        }
        PutOutcome::Existing { size } => (StatusCode::OK, size, false),
    };
    Ok((
        status,
        [(header::ETAG, format!("\"{digest}\""))],
        Json(PutBlobResponse {
            digest,
            size,
            created,
        }),
    )
        .into_response())
}

async fn head_blob(
    State(state): State<AppState>,
    _auth: UploadAuth,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest: Digest = digest.parse()?;
    Ok(match state.blobs.size(&digest).await? {
        Some(size) => (
            StatusCode::OK,
            [
                (header::CONTENT_LENGTH, size.to_string()),
                (header::ETAG, format!("\"{digest}\"")),
            ],
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn find_missing(
    State(state): State<AppState>,
    _auth: UploadAuth,
    ApiJson(request): ApiJson<FindMissingRequest>,
) -> Result<Json<FindMissingResponse>, ApiError> {
    let limit = state.settings.max_bundle_entries;
    if request.digests.len() > limit {
        return Err(ApiError::bad_request(
            "too_many_digests",
            format!(
                "{} digests in one request; ask for at most {limit} at a time",
                request.digests.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let unique: Vec<Digest> = request
        .digests
        .into_iter()
        .filter(|d| seen.insert(*d))
        .collect();
    // A blob a garbage collection is deleting is to be uploaded again.
    let (unavailable, _) = state.lifecycle.unavailable(&unique).await?;
    let missing = unique
        .into_iter()
        .filter(|d| unavailable.contains(d))
        .collect();
    Ok(Json(FindMissingResponse { missing }))
}

/// How much of the body of a rejected upload is read so that the client sees the error.
const LINGER_BYTES: u64 = 1 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// The request's `Content-Length`, when it sends one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("bad_content_length", "Content-Length is not a number")
                })
        })
        .transpose()
}
