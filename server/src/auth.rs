//! Bearer tokens: the upload token that guards the upload endpoints, and the bundle tokens that
//! open one bundle each. Tokens are compared as sha256 hashes in constant time and never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use std::sync::Arc;

use crate::AppState;
use crate::bundle::BundleRecord;
use crate::error::ApiError;

/// The token of an `Authorization: Bearer <token>` header.
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer(parts)
            .map(|t| Self(t.to_owned()))
            .ok_or(ApiError::Unauthorized(
                "this endpoint needs an `Authorization: Bearer <bundle token>` header",
            ))
    }
}

/// Whether a request presenting `token` (or none) may act as an operator: it carries the
/// upload token, or the server has none (loopback or `--insecure`), as for [`UploadAuth`].
pub fn is_operator(state: &AppState, token: Option<&str>) -> bool {
    match (&state.upload_token_sha256, token) {
        (None, _) => true,
        (Some(expected), Some(token)) => {
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            hash.ct_eq(expected).into()
        }
        (Some(_), None) => false,
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub struct OptionalBearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(bearer(parts).map(str::to_owned)))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Proof that the request may upload: it carries the server's upload token, or the server runs
/// without one (only allowed on loopback or with `--insecure`).
pub struct UploadAuth;

impl FromRequestParts<AppState> for UploadAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.upload_token_sha256.is_none() {
            return Ok(Self);
        }
        let presented = bearer(parts).ok_or(ApiError::Unauthorized(
            "upload endpoints need an `Authorization: Bearer <upload token>` header",
        ))?;
        if is_operator(state, Some(presented)) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("the upload token is wrong"))
        }
    }
}

/// The bundle `id` for a download: `token` is the bundle's token, or (with pod identity) the
/// ServiceAccount token of a pod in the bundle's namespace. Anything else is answered exactly as
/// an unknown bundle is.
pub async fn open_bundle(
    state: &AppState,
    id: &str,
    token: &str,
) -> Result<Arc<BundleRecord>, ApiError> {
    match state.bundles.authorize(id, token).await {
        Err(ApiError::BundleNotFound) => {}
        other => return other,
    }
    // A bundle whose sources are being fetched: served once they are stored, to whoever
    // would open it then (its token, or a pod of its namespace).
    if let Some(pending) = crate::pending::find(state, id).await?
        && (pending.record.accepts(token, state.clock.now())
            || admitted(state, &pending.record, token).await)
    {
        return crate::pending::wait(state, pending)
            .await?
            .ok_or(ApiError::BundleNotFound);
    }
    if state.pod_identity.is_none() {
        return Err(ApiError::BundleNotFound);
    }
    let Some(record) = state.bundles.find(id).await? else {
        return Err(ApiError::BundleNotFound);
    };
    if admitted(state, &record, token).await {
        Ok(record)
    } else {
        Err(ApiError::BundleNotFound)
    }
}

/// Whether `token` is the ServiceAccount token of a pod that pod identity lets open `record`
/// (one of its namespace), while the bundle lives.
async fn admitted(state: &AppState, record: &BundleRecord, token: &str) -> bool {
    let Some(identity) = &state.pod_identity else {
        return false;
    };
    if state.clock.now() >= record.manifest.expires_at {
        return false;
    }
    let namespace = record
        .manifest
        .owner
        .as_ref()
        .and_then(|o| o.namespace.as_deref());
    identity.admits(token, namespace).await
}
