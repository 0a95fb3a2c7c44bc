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

    for (digest, size) in [(d, 10_000), (dl, 21 << 20), (d5, 12 << 20)] {
        blobs.delete(&digest, size).await?;
        ensure!(blobs.size(&digest).await?.is_none());
        // Deleting it again (another replica's collection was first) is no error.
        blobs.delete(&digest, size).await?;
    }
    Ok(())
}

pub async fn call(
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

pub async fn put_blob(app: &Router, data: &[u8]) -> Result<(StatusCode, Value)> {
    let digest = Digest::of(data);
    let put = Request::put(format!("/v1/blobs/{digest}"))
        .header(header::CONTENT_LENGTH, data.len())
        .body(Body::from(data.to_vec()))?;
    let (status, _, body) = call(app, put).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}

pub async fn post(app: &Router, uri: &str, body: Value) -> Result<(StatusCode, Value)> {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))?;
    let (status, _, body) = call(app, request).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}

/// A bundle of one jar, `data`, living `ttl`; its id and token.
pub async fn bundle_of(app: &Router, data: &[u8], ttl: &str) -> Result<(String, String)> {
    let entries =
        json!([{"name": "a.jar", "digest": Digest::of(data), "size": data.len(), "kind": "jar"}]);
    let (status, body) = post(app, "/v1/bundles", json!({"entries": entries, "ttl": ttl})).await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    Ok((
        body["id"].as_str().context("id")?.to_owned(),
        body["token"].as_str().context("token")?.to_owned(),
    ))
}

fn digests_of(gc: &Value) -> Vec<Digest> {
    let mut out: Vec<Digest> = gc["blobs"]
        .as_array()
        .map(|blobs| {
            blobs
                .iter()
                .filter_map(|b| b["digest"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The lifecycle on this backend, with a clock the test moves: the sweep deletes expired
/// bundles, garbage collection deletes unreferenced blobs past the grace and nothing else, a
/// dry run deletes nothing, and the storage cap answers 507 until space is freed.
pub async fn lifecycle_suite(storage: &Storage) -> Result<()> {
    use sparkstage_server::clock::ManualClock;
    use sparkstage_server::{Injected, lifecycle::LifecycleSettings};
    ensure_layout(storage.store.as_ref()).await?;
    let clock = ManualClock::new(chrono::Utc::now());
    let (a, b, c) = (
        test_bytes(300_000, 21),
        test_bytes(200_000, 22),
        test_bytes(100_000, 23),
    );
    let (da, db, dc) = (Digest::of(&a), Digest::of(&b), Digest::of(&c));
    let settings = Settings {
        // Room for a, b and c, not for a fourth blob of 300 kB.
        max_storage: Some(700_000),
        lifecycle: LifecycleSettings {
            gc_grace: Duration::from_secs(3600),
            ..LifecycleSettings::default()
        },
        ..Settings::default()
    };
    let state = AppState::with(
        storage,
        settings,
        None,
        Injected {
            clock: std::sync::Arc::new(clock.clone()),
            ..Injected::default()
        },
    );
    state.blobs.count_usage().await?;
    let used_before = state.blobs.usage().used();
    ensure!(used_before == 0, "a fresh store holds {used_before} bytes");
    let app = app(state.clone());
    for data in [&a, &b, &c] {
        let (status, body) = put_blob(&app, data).await?;
        ensure!(status == StatusCode::CREATED, "{status} {body}");
    }
    // Past the cap: 507 before anything is written, naming the cap and the use.
    let d = test_bytes(300_000, 24);
    let (status, body) = put_blob(&app, &d).await?;
    ensure!(
        status == StatusCode::INSUFFICIENT_STORAGE && body["code"] == "storage_full",
        "{status} {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("683.6 KiB") && message.contains("585.9 KiB"),
        "{message}"
    );
    ensure!(state.blobs.size(&Digest::of(&d)).await?.is_none());
    // A blob already stored is no new use.
    ensure!(put_blob(&app, &a).await?.0 == StatusCode::OK);

    let (x, _) = bundle_of(&app, &a, "1h").await?;
    let (y, y_token) = bundle_of(&app, &c, "3h").await?;

    // Within the grace nothing is collected, and nothing has expired.
    let (status, gc) = post(&app, "/v1/gc", json!({})).await?;
    ensure!(status == StatusCode::OK, "{status} {gc}");
    ensure!(gc["blobs_deleted"] == 0 && gc["blobs_kept"] == 3, "{gc}");
    ensure!(gc["bundles"] == json!([]), "{gc}");

    // Two hours on: x has expired; a (only x's) and b (nobody's) are past the grace.
    clock.advance(Duration::from_secs(2 * 3600));
    let (_, dry) = post(&app, "/v1/gc", json!({"dry_run": true})).await?;
    ensure!(dry["dry_run"] == true, "{dry}");
    ensure!(
        dry["bundles"] == json!([{"id": x, "reason": "expired"}]),
        "{dry}"
    );
    let mut want = vec![da, db];
    want.sort();
    ensure!(digests_of(&dry) == want, "{dry}");
    ensure!(dry["bytes_freed"] == 500_000, "{dry}");
    for digest in [da, db, dc] {
        ensure!(
            state.blobs.size(&digest).await?.is_some(),
            "the dry run kept {digest}"
        );
    }
    ensure!(
        state.bundles.load(&x).await?.is_some(),
        "the dry run kept the bundle"
    );

    let (status, gc) = post(&app, "/v1/gc", json!({"dry_run": false})).await?;
    ensure!(status == StatusCode::OK, "{status} {gc}");
    ensure!(
        gc["bundles"] == dry["bundles"] && digests_of(&gc) == want,
        "{gc} vs {dry}"
    );
    ensure!(gc["blobs_deleted"] == 2 && gc["blobs_kept"] == 1, "{gc}");
    ensure!(gc["storage_used"] == 100_000, "{gc}");
    ensure!(
        state.bundles.load(&x).await?.is_none(),
        "x's record is gone"
    );
    for digest in [da, db] {
        ensure!(
            state.blobs.size(&digest).await?.is_none(),
            "{digest} collected"
        );
    }
    // y still downloads, verified.
    let get = Request::get(format!("/v1/bundles/{y}/blobs/{dc}"))
        .header(header::AUTHORIZATION, format!("Bearer {y_token}"))
        .body(Body::empty())?;
    let (status, _, body) = call(&app, get).await?;
    ensure!(
        status == StatusCode::OK && Digest::of(&body) == dc,
        "y downloads"
    );

    // The space is free again.
    let (status, body) = put_blob(&app, &d).await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    let (_, metrics, body) = call(&app, Request::get("/metrics").body(Body::empty())?).await?;
    drop(metrics);
    let text = String::from_utf8_lossy(&body);
    for line in [
        "sparkstage_bundles_deleted_total{reason=\"expired\"} 1",
        "sparkstage_gc_blobs_deleted_total 2",
        "sparkstage_gc_bytes_freed_total 500000",
        "sparkstage_storage_used_bytes 400000",
    ] {
        ensure!(text.contains(line), "{line} not in\n{text}");
    }
    ensure!(
        text.contains("sparkstage_gc_duration_seconds_count 2"),
        "{text}"
    );

    // Leave the store as found for the other suites.
    clock.advance(Duration::from_secs(4 * 3600));
    let (_, gc) = post(&app, "/v1/gc", json!({})).await?;
    ensure!(gc["blobs_deleted"] == 2, "{gc}");
    Ok(())
}
