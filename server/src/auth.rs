//! Bearer tokens: the upload token that guards the upload endpoints, and the bundle tokens that
//! open one bundle each. Tokens are compared as sha256 hashes in constant time and never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
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
        let Some(expected) = &state.upload_token_sha256 else {
            return Ok(Self);
        };
        let presented = bearer(parts).ok_or(ApiError::Unauthorized(
            "upload endpoints need an `Authorization: Bearer <upload token>` header",
        ))?;
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(hash.ct_eq(expected)) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("the upload token is wrong"))
        }
    }
}
