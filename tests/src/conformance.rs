//! One conformance suite for the storage layer and the HTTP API, written once and run against
//! every backend (local directory, memory, S3 via moto, GCS via fake-gcs-server, Azure via
//! azurite) by `tests/tests/conformance.rs`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_server::blob_store::{BlobStore, BodyError, PutOutcome};
use sparkstage_server::error::ApiError;
use sparkstage_server::storage::Storage;
use sparkstage_server::{AppState, Settings, app, ensure_layout};
use tower::ServiceExt;

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Splits `data` into a body stream of uneven chunks, as a network delivers it.
fn chunked(data: &[u8]) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + use<> {
    let mut chunks = Vec::new();
    let mut rest = Bytes::copy_from_slice(data);
    let mut size = 1000;
    while !rest.is_empty() {
        let n = size.min(rest.len());
        chunks.push(Ok(rest.split_to(n)));
        size = (size * 7 / 3) % (3 << 20) + 17;
    }
    futures::stream::iter(chunks)
}

async fn read_all(
    store: &BlobStore,
    digest: &Digest,
    range: Option<std::ops::Range<u64>>,
) -> Result<Vec<u8>> {
    let read = store
        .get(digest, range)
        .await?
        .context("blob should be stored")?;
    let chunks: Vec<Bytes> = read.stream.try_collect().await?;
    Ok(chunks.concat())
}

/// The storage layer: streamed, verified writes; reads and ranges; rejection leaves nothing.
pub async fn blob_store_suite(storage: &Storage) -> Result<()> {
    let state = AppState::new(storage, Settings::default(), None);
    let blobs = &state.blobs;
    let limit = 1 << 30;

    // Small blob: one plain put.
    let small = test_bytes(10_000, 1);
    let d = Digest::of(&small);
    ensure!(blobs.size(&d).await?.is_none(), "fresh store has no blob");
    let put = blobs
        .put(&d, Some(small.len() as u64), limit, chunked(&small))
        .await?;
    ensure!(put == PutOutcome::Created { size: 10_000 }, "{put:?}");
    ensure!(blobs.size(&d).await? == Some(10_000));
    ensure!(read_all(blobs, &d, None).await? == small);
    ensure!(read_all(blobs, &d, Some(100..250)).await? == small[100..250]);
    let again = blobs.put(&d, None, limit, futures::stream::empty()).await?;
    ensure!(
        again == PutOutcome::Existing { size: 10_000 },
        "existing blob is not rewritten: {again:?}"
    );

    // Large blob: several multipart parts of uneven chunks.
    let large = test_bytes(21 << 20, 2);
    let dl = Digest::of(&large);
    let put = blobs.put(&dl, None, limit, chunked(&large)).await?;
    ensure!(put == PutOutcome::Created { size: 21 << 20 }, "{put:?}");
    let back = read_all(blobs, &dl, None).await?;
    ensure!(Digest::of(&back) == dl, "large blob reads back intact");
    let tail = read_all(blobs, &dl, Some((20 << 20)..(21 << 20))).await?;
    ensure!(tail == large[20 << 20..], "range of the last part");

    // A wrong digest, small or large, leaves nothing.
    for (len, seed) in [(5_000usize, 3u64), (18 << 20, 4)] {
        let data = test_bytes(len, seed);
        let claimed = Digest::of(&test_bytes(len, seed + 100));
        let err = blobs.put(&claimed, None, limit, chunked(&data)).await;
        ensure!(
            matches!(err, Err(ApiError::DigestMismatch { .. })),
            "{err:?}"
        );
        ensure!(
            blobs.size(&claimed).await?.is_none(),
            "mismatched {len} bytes left nothing"
        );
    }

    // A body that breaks midway leaves nothing.
    let data = test_bytes(12 << 20, 5);
    let d5 = Digest::of(&data);
    let broken = chunked(&data)
        .take(6)
        .chain(futures::stream::iter([Err(BodyError::Aborted(
            "connection reset".into(),
        ))]));
    let err = blobs.put(&d5, None, limit, broken).await;
    ensure!(matches!(err, Err(ApiError::BodyAborted(_))), "{err:?}");
    ensure!(blobs.size(&d5).await?.is_none(), "broken body left nothing");

    // Concurrent uploads of one new blob all succeed and leave it intact.
    let results =
        futures::future::join_all((0..4).map(|_| blobs.put(&d5, None, limit, chunked(&data))))
            .await;
    for r in results {
        ensure!(
            matches!(
                r,
                Ok(PutOutcome::Created { .. } | PutOutcome::Existing { .. })
            ),
            "{r:?}"
        );
    }
    ensure!(Digest::of(&read_all(blobs, &d5, None).await?) == d5);

    for digest in [d, dl, d5] {
        blobs.delete(&digest).await?;
        ensure!(blobs.size(&digest).await?.is_none());
    }
    Ok(())
}

async fn call(
    app: &Router,
    request: Request<Body>,
) -> Result<(StatusCode, axum::http::HeaderMap, Bytes)> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}

/// The HTTP API on this backend: upload, find missing, bundle, download with ranges, and a
/// second server state on the same store (a restart, or another replica) serving the bundle.
pub async fn api_suite(storage: &Storage) -> Result<()> {
    ensure_layout(storage.store.as_ref()).await?;
    let settings = Settings {
        bundle_cache_ttl: Duration::from_millis(1),
        ..Settings::default()
    };
    let first = app(AppState::new(storage, settings.clone(), None));
    let jar = test_bytes(9 << 20, 10);
    let conf = b"spark.executor.memory=2g\n".to_vec();
    let (dj, dc) = (Digest::of(&jar), Digest::of(&conf));

    let missing = Request::post("/v1/blobs/missing")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"digests": [dj, dc]}).to_string()))?;
    let (status, _, body) = call(&first, missing).await?;
    ensure!(status == StatusCode::OK);
    ensure!(serde_json::from_slice::<Value>(&body)? == json!({"missing": [dj, dc]}));

    for (data, digest) in [(&jar, dj), (&conf, dc)] {
        let put = Request::put(format!("/v1/blobs/{digest}"))
            .header(header::CONTENT_LENGTH, data.len())
            .body(Body::from(data.clone()))?;
        let (status, _, body) = call(&first, put).await?;
        ensure!(status == StatusCode::CREATED, "{status} {body:?}");
    }
    let entries = json!([
        {"name": "app.jar", "digest": dj, "size": jar.len(), "kind": "jar"},
        {"name": "app.conf", "digest": dc, "size": conf.len(), "kind": "file"},
    ]);
    let create = Request::post("/v1/bundles")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"entries": entries, "owner": {"namespace": "spark", "labels": {"spark-app-selector": "spark-123"}}, "ttl": "1h"}).to_string()))?;
    let (status, _, body) = call(&first, create).await?;
    ensure!(status == StatusCode::CREATED, "{status} {body:?}");
    let created: Value = serde_json::from_slice(&body)?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let token = created["token"].as_str().context("token")?.to_owned();

    // A second state on the same store knows the bundle: the metadata lives in the store.
    let second = app(AppState::new(storage, settings, None));
    let get = |uri: String| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
    };
    let (status, _, body) = call(&second, get(format!("/v1/bundles/{id}"))?).await?;
    ensure!(status == StatusCode::OK, "{status} {body:?}");
    let manifest: Value = serde_json::from_slice(&body)?;
    ensure!(manifest["entries"] == entries);
    ensure!(manifest["owner"]["namespace"] == json!("spark"));

    let (status, headers, body) =
        call(&second, get(format!("/v1/bundles/{id}/blobs/{dj}"))?).await?;
    ensure!(
        status == StatusCode::OK && body[..] == jar[..],
        "full download"
    );
    ensure!(headers[header::ETAG] == format!("\"{dj}\"").as_str());
    let mut ranged = get(format!("/v1/bundles/{id}/blobs/{dj}"))?;
    ranged
        .headers_mut()
        .insert(header::RANGE, "bytes=8388600-8388700".parse()?);
    let (status, _, body) = call(&second, ranged).await?;
    ensure!(status == StatusCode::PARTIAL_CONTENT && body[..] == jar[8_388_600..=8_388_700]);

    let delete = Request::delete(format!("/v1/bundles/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())?;
    ensure!(call(&first, delete).await?.0 == StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _, _) = call(&second, get(format!("/v1/bundles/{id}"))?).await?;
    ensure!(
        status == StatusCode::NOT_FOUND,
        "a deleted bundle is gone on every replica"
    );

    let (status, _, _) = call(&first, Request::get("/readyz").body(Body::empty())?).await?;
    ensure!(status == StatusCode::OK, "readyz");
    Ok(())
}
