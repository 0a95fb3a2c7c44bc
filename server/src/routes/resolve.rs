//! `POST /v1/resolve`: Maven coordinates resolved by the server (see [`crate::resolutions`]).

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use sparkstage_api::resolve::{ResolveRequest, ResolveResponse};

use crate::AppState;
use crate::auth::UploadAuth;
use crate::error::{ApiError, ApiJson};
use crate::metrics::ResolutionLabels;

/// Not under the JSON calls' deadline: a cold resolution against a far repository may take
/// longer; the resolver's own connect and read timeouts bound it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/resolve", post(resolve))
        .layer(DefaultBodyLimit::max(1 << 20))
}

async fn resolve(
    State(state): State<AppState>,
    _auth: UploadAuth,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Result<Json<ResolveResponse>, ApiError> {
    let (served, answer) = state
        .resolutions
        .resolve(
            request,
            &state.blobs,
            state.settings.max_blob_size,
            &state.lifecycle,
        )
        .await;
    state
        .metrics
        .resolutions
        .get_or_create(&ResolutionLabels {
            outcome: served.label(),
        })
        .inc();
    answer.map(|a| Json((*a).clone()))
}
