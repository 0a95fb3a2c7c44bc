//! The 2017 fork's resource staging server API (`sparkstage_api::fork`), served beside v1 so
//! that the fork's submission clients and pods work unchanged, with v1's guarantees:
//!
//! - `POST /api/v0/resources`: the `resources` part (a tar.gz) is streamed to a file in the
//!   spool (`crate::spool`), hashed and counted as it arrives (never held in memory, at most
//!   `--max-blob-size`, at most `--spool-concurrency` at once, with the sources), then stored as a blob like any upload; the
//!   resource is a bundle with that one archive entry and the fork's owner (its namespace and
//!   labels, which the lifecycle follows). The upload token (`--upload-token-file`) applies, as a
//!   bearer token: the fork's clients sent none, so they work only against a server without one
//!   (loopback, or `--insecure`).
//! - `GET /api/v0/resources/{id}` with `Authorization: <secret>`: the secret is the bundle's
//!   token (256 random bits, stored only as its sha256, compared in constant time). A wrong
//!   secret and an unknown id get the same 404, as on v1 (the fork answered 401 for the first).
//! - `GET /api/v0/ping` and `GET /api/ping`: `pong`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;
use sparkstage_api::bundles::{BundleEntry, CreateBundleRequest, EntryKind, Owner};
use sparkstage_api::fork::{
    ARCHIVE_ENTRY, OWNER_PART, OWNER_TYPE_POD, PONG, RESOURCES_PART, RESOURCES_PATH,
    ResourcesOwner, UploadResponse,
};
use tokio::io::AsyncWriteExt as _;

use crate::AppState;
use crate::auth::UploadAuth;
use crate::error::ApiError;
use crate::request_body::BodyError;

/// The largest `resourcesOwner` part.
const MAX_OWNER_BYTES: u64 = 64 * 1024;

/// The upload route: no body limit of axum's (the blob size limit applies).
pub fn upload_router() -> Router<AppState> {
    let route = post(upload).layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route(RESOURCES_PATH, route.clone())
        // The fork's Retrofit client posts to `api/v0/resources/`.
        .route(&format!("{RESOURCES_PATH}/"), route)
}

/// Download and ping.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{RESOURCES_PATH}/{{id}}"), get(download))
        .route("/api/v0/ping", get(ping))
        .route("/api/ping", get(ping))
}

async fn ping() -> &'static str {
    PONG
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_v0_upload", message)
}

/// A multipart failure: the body's own failure (stalled, broken) as such, else malformed input.
fn multipart_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamReadFailed(inner) => ApiError::from(BodyError::of(&*inner)),
        multer::Error::FieldSizeExceeded { field_name, limit } => ApiError::TooLarge {
            what: format!("the part {}", field_name.unwrap_or_default()),
            limit,
        },
        multer::Error::StreamSizeExceeded { limit } => ApiError::TooLarge {
            what: "the upload".to_owned(),
            limit,
        },
        other => bad(format!("the multipart body cannot be read: {other}")),
    }
}

/// A spooled part: its file (removed when dropped), digest and size.
struct Spooled {
    file: tempfile::NamedTempFile,
    digest: Digest,
    size: u64,
}

/// Writes `field` to a new temporary file, hashing and counting; at most `limit` bytes.
async fn spool(
    dir: &std::path::Path,
    mut field: multer::Field<'_>,
    limit: u64,
) -> Result<Spooled, ApiError> {
    let file = tempfile::Builder::new()
        .prefix(".sparkstage-v0-")
        .tempfile_in(dir)
        .map_err(|e| ApiError::Internal(format!("cannot create a spool file: {e}")))?;
    let mut writer = tokio::io::BufWriter::with_capacity(
        256 * 1024,
        tokio::fs::File::from_std(
            file.reopen()
                .map_err(|e| ApiError::Internal(format!("cannot open the spool file: {e}")))?,
        ),
    );
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::TooLarge {
                what: format!("the part {RESOURCES_PART} (more than {limit} bytes arrived)"),
                limit,
            });
        }
        hasher.update(&chunk);
        writer
            .write_all(&chunk)
            .await
            .map_err(|e| ApiError::StorageFull(format!("the spool file cannot be written: {e}")))?;
    }
    writer
        .flush()
        .await
        .map_err(|e| ApiError::StorageFull(format!("the spool file cannot be written: {e}")))?;
    Ok(Spooled {
        file,
        digest: Digest::from_bytes(hasher.finalize().into()),
        size,
    })
}

async fn upload(
    State(state): State<AppState>,
    _auth: UploadAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResponse>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        bad(format!(
            "the upload must be multipart/form-data with the parts {RESOURCES_PART} and \
             {OWNER_PART}"
        ))
    })?;
    let limit = state.settings.max_blob_size;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec![RESOURCES_PART, OWNER_PART])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(limit.saturating_add(MAX_OWNER_BYTES + 64 * 1024))
                .for_field(OWNER_PART, MAX_OWNER_BYTES),
        );
    let stream = body.into_data_stream().map_err(|e| BodyError::of(&e));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let _turn = state.spool.turn().await?;
    let mut resources = None;
    let mut owner: Option<ResourcesOwner> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some(RESOURCES_PART) if resources.is_none() => {
                resources = Some(spool(state.spool.dir(), field, limit).await?);
            }
            Some(OWNER_PART) if owner.is_none() => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                owner = Some(serde_json::from_slice(&bytes).map_err(|e| {
                    bad(format!(
                        "the part {OWNER_PART} is not {{\"ownerNamespace\", \"ownerLabels\", \
                         \"ownerType\"}}: {e}"
                    ))
                })?);
            }
            name => {
                return Err(bad(format!(
                    "the part {} is given twice",
                    name.unwrap_or_default()
                )));
            }
        }
    }
    let resources = resources.ok_or_else(|| bad(format!("no part {RESOURCES_PART}")))?;
    let owner = owner.ok_or_else(|| bad(format!("no part {OWNER_PART}")))?;
    if owner.owner_type != OWNER_TYPE_POD {
        return Err(bad(format!(
            "ownerType {:?} is not supported; the one owner type is {OWNER_TYPE_POD:?}",
            sparkstage_api::shown::outside(&owner.owner_type, 100)
        )));
    }

    // Stored as any blob: the spool file read back, its digest checked again on the way.
    state
        .lifecycle
        .condemned()
        .wait_until_free(&resources.digest)
        .await?;
    state
        .blobs
        .put_file(
            resources.file.path(),
            &resources.digest,
            resources.size,
            limit,
        )
        .await?;
    let created = crate::routes::bundles::create_bundle(
        &state,
        CreateBundleRequest {
            entries: vec![BundleEntry {
                name: ARCHIVE_ENTRY.to_owned(),
                digest: resources.digest,
                size: resources.size,
                kind: EntryKind::Archive,
            }],
            owner: Some(Owner {
                namespace: Some(owner.owner_namespace),
                labels: owner.owner_labels,
                spark_app_id: None,
            }),
            ttl: None,
            sources: Vec::new(),
        },
    )
    .await?;
    tracing::info!(bundle = %created.id, size = resources.size, "v0 resources stored");
    Ok(Json(UploadResponse {
        resource_id: created.id,
        resource_secret: created.token,
    }))
}

async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let started = Instant::now();
    // The fork's clients send the raw secret; a `Bearer` one is taken too.
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .ok_or(ApiError::Unauthorized(
            "this endpoint needs an `Authorization: <resourceSecret>` header",
        ))?;
    let record = crate::auth::open_bundle(&state, &id, secret).await?;
    state.bundles.mark_downloaded(record.id()).await?;
    let entry = match &record.manifest.entries[..] {
        [entry] => entry.digest,
        _ => {
            return Err(ApiError::bad_request(
                "not_a_v0_resource",
                format!(
                    "bundle {id} has {} entries; /api/v0 serves the one-archive resources of \
                     POST /api/v0/resources (use /v1/bundles/{id})",
                    record.manifest.entries.len()
                ),
            ));
        }
    };
    crate::routes::bundles::serve_entry(&state, &record, &entry, &headers, started).await
}
