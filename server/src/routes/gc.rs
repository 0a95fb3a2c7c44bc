//! `POST /v1/gc` (upload token): one sweep and one garbage collection, now (see
//! [`crate::lifecycle`]); with `dry_run`, only what they would delete.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use sparkstage_api::lifecycle::{GcRequest, GcResponse};

use crate::AppState;
use crate::auth::UploadAuth;
use crate::error::{ApiError, ApiJson};

/// Not under the JSON calls' deadline: a collection lists every blob, which takes as long as
/// the store needs.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/gc", post(gc))
        .layer(DefaultBodyLimit::max(4096))
}

async fn gc(
    State(state): State<AppState>,
    _auth: UploadAuth,
    ApiJson(request): ApiJson<GcRequest>,
) -> Result<Json<GcResponse>, ApiError> {
    Ok(Json(state.lifecycle.run_once(request.dry_run).await?))
}
