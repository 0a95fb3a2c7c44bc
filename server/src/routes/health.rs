//! `GET /healthz` (the process serves), `GET /readyz` (the storage answers), `GET /metrics`,
//! `GET /v1/info` (what this server offers).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use sparkstage_api::info::{INFO_PATH, ServerInfo};

use crate::error::ApiError;
use crate::{AppState, LAYOUT_MARKER, metrics};

/// How long `/readyz` waits for the storage.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::serve))
        .route(INFO_PATH, get(info))
}

async fn info(State(state): State<AppState>) -> axum::Json<ServerInfo> {
    axum::Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pod_identity: state.pod_identity.is_some(),
        sources: true,
    })
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let marker = Path::from(LAYOUT_MARKER);
    match tokio::time::timeout(READY_TIMEOUT, state.store.head(&marker)).await {
        Ok(Ok(_)) => Ok("ready\n"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::StorageTimeout(READY_TIMEOUT)),
    }
}
