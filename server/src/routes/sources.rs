//! `POST /v1/sources` (issue 13): `{"url", "digest"?}` → the source fetched once
//! for the cluster and stored as a blob: `{"digest", "size"}`. Waits for the fetch (the
//! request's own deadline does not apply: a large source takes its time).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sparkstage_api::Digest;

use crate::AppState;
use crate::auth::UploadAuth;
use crate::error::{ApiError, ApiJson};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRequest {
    pub url: String,
    #[serde(default)]
    pub digest: Option<Digest>,
}

#[derive(Debug, Serialize)]
pub struct SourceResponse {
    pub digest: Digest,
    pub size: u64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sources", post(fetch))
}

async fn fetch(
    State(state): State<AppState>,
    _auth: UploadAuth,
    ApiJson(request): ApiJson<SourceRequest>,
) -> Result<Json<SourceResponse>, ApiError> {
    let (digest, size) = state.sources.get(&request.url, request.digest).await?;
    Ok(Json(SourceResponse { digest, size }))
}
