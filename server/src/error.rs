//! The server's one error type and the one place that maps it to an HTTP status and a JSON body
//! `{"code": ..., "message": ...}`. Storage and internal failures are logged here with their
//! details and answered with a generic message, so backend internals never reach clients.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sparkstage_api::bundles::{MissingBlobsBody, NameError};
use sparkstage_api::digest::DigestError;
use sparkstage_api::{Digest, ErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadDigest(#[from] DigestError),
    #[error("{0}")]
    BadName(#[from] NameError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    BadJson(String, StatusCode),
    #[error(
        "digest mismatch: the URL names {expected} but the {size} bytes received hash to {actual}; \
         the upload was discarded"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error(
        "size mismatch for {digest}: Content-Length declared {declared} bytes but {received} \
         arrived; the upload was discarded"
    )]
    SizeMismatch {
        digest: Digest,
        declared: u64,
        received: u64,
    },
    #[error("{what} is larger than this server's limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("the request body stalled: no data for {0:?}; the upload was discarded, send it again")]
    BodyStalled(Duration),
    #[error("the request body could not be read ({0}); the upload was discarded")]
    BodyAborted(String),
    #[error(
        "the request body did not arrive within {0:?}; the request was discarded, send it again"
    )]
    BodyTooSlow(Duration),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(
        "no bundle with this id accepts this token (it is unknown, expired or deleted, or the \
         token is wrong)"
    )]
    BundleNotFound,
    #[error("{0} is not an entry of this bundle")]
    BlobNotInBundle(Digest),
    #[error("{} of the bundle's blobs are not stored; upload them first", .0.len())]
    MissingBlobs(Vec<Digest>),
    #[error("the requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("the storage backend failed")]
    Storage(#[source] object_store::Error),
    #[error("the storage backend did not answer within {0:?}")]
    StorageTimeout(Duration),
    #[error("{0}")]
    RepositoryNotAllowed(String),
    #[error("{0}")]
    Unresolved(String),
    #[error("{0}")]
    ResolutionLimit(String),
    #[error("a Maven repository failed: {0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(String),
    #[error("no such endpoint: {0}; the API is described in the README")]
    NoSuchEndpoint(String),
    #[error("{0} is not allowed on this path; the API is described in the README")]
    MethodNotAllowed(String),
    #[error(
        "the server has {0} connections open, its limit (--max-connections); try again in a \
         moment"
    )]
    TooManyConnections(usize),
    #[error("the request is not valid HTTP (its request line or a header could not be parsed)")]
    BadHttp,
    #[error("the request's URI is too long")]
    UriTooLong,
    #[error("the request's headers are larger than this server accepts (--max-header-size)")]
    HeadersTooLarge,
    /// The `--max-storage` cap, or a full disk.
    #[error("{0}")]
    StorageFull(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadDigest(_)
            | Self::BadName(_)
            | Self::BadRequest { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::BodyAborted(_)
            | Self::BadHttp => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooManyConnections(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadJson(_, status) => *status,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyStalled(_) | Self::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RepositoryNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::BundleNotFound | Self::BlobNotInBundle(_) | Self::NoSuchEndpoint(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MissingBlobs(_) => StatusCode::CONFLICT,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Storage(_) | Self::StorageTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unresolved(_) | Self::ResolutionLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadDigest(_) => "bad_digest",
            Self::BadName(_) => "bad_name",
            Self::BadRequest { code, .. } => code,
            Self::BadJson(..) => "bad_json",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::TooLarge { .. } => "too_large",
            Self::BodyStalled(_) | Self::BodyTooSlow(_) => "body_timeout",
            Self::BodyAborted(_) => "body_aborted",
            Self::Unauthorized(_) => "unauthorized",
            Self::BundleNotFound => "bundle_not_found",
            Self::BlobNotInBundle(_) => "blob_not_in_bundle",
            Self::MissingBlobs(_) => "missing_blobs",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::Storage(_) | Self::StorageTimeout(_) => "storage_unavailable",
            Self::Internal(_) => "internal",
            Self::RepositoryNotAllowed(_) => "repository_not_allowed",
            Self::Unresolved(_) => "unresolved",
            Self::ResolutionLimit(_) => "resolution_limit",
            Self::Upstream(_) => "repository_failed",
            Self::NoSuchEndpoint(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::TooManyConnections(_) => "too_many_connections",
            Self::BadHttp => "bad_http",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::StorageFull(_) => "storage_full",
        }
    }

    /// This error as a whole HTTP/1.1 answer that closes the connection, for the places that
    /// answer below the router (a connection past the limit, a request hyper cannot parse).
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let status = self.status();
        let body = serde_json::to_vec(&ErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
        })
        .unwrap_or_default();
        let retry = if status == StatusCode::SERVICE_UNAVAILABLE {
            "retry-after: 1\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             {retry}connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

impl From<object_store::Error> for ApiError {
    fn from(e: object_store::Error) -> Self {
        if is_out_of_space(&e) {
            return Self::StorageFull(
                "the storage is full (no space left on the device); nothing was stored".into(),
            );
        }
        Self::Storage(e)
    }
}

/// Whether an error, or one of its sources, is a full disk or a used-up quota.
pub fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && (matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) || io.raw_os_error() == Some(28))
        {
            return true;
        }
        source = e.source();
    }
    false
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // A body that stalled is the client's timeout, whichever extractor met it.
        if let crate::request_body::BodyError::Stalled(d) =
            crate::request_body::BodyError::of(&rejection)
        {
            return Self::BodyStalled(d);
        }
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => rejection.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        Self::BadJson(rejection.body_text(), status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code().to_owned();
        match &self {
            Self::Storage(source) => {
                tracing::error!(error = %source, "storage backend error");
            }
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            _ if status.is_server_error() => tracing::warn!(error = %self, "request failed"),
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        let message = self.to_string();
        let mut response = match self {
            Self::MissingBlobs(missing) => (
                status,
                Json(MissingBlobsBody {
                    code,
                    message,
                    missing,
                }),
            )
                .into_response(),
            Self::RangeNotSatisfiable { size } => {
                let mut r = (status, Json(ErrorBody { code, message })).into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            _ => (status, Json(ErrorBody { code, message })).into_response(),
        };
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body extractor whose rejections use [`ApiError`]'s format.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);
