//! `sparkstage-init`'s deadline bounds the whole run, and a manifest is read within a size
//! bound, against a staging server double that serves huge manifests and slow blobs.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use sparkstage_api::Digest;
use sparkstage_api::bundles::{BundleEntry, BundleManifest, EntryKind};

mod common;
use common::{Dirs, init, stderr};

/// A manifest of `entries` jars, all of one one-byte blob.
fn manifest(entries: usize) -> Bytes {
    let digest = Digest::of(b"x");
    let manifest = BundleManifest {
        id: "b".into(),
        entries: (0..entries)
            .map(|i| BundleEntry {
                name: format!("f{i}.jar"),
                digest,
                size: 1,
                kind: EntryKind::Jar,
            })
            .collect(),
        owner: None,
        created_at: chrono::Utc::now(),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default())
}

/// The content of the blobs of the `stalled` bundle, of which the server sends half.
fn stalled_blob() -> Vec<u8> {
    vec![7u8; 1 << 20]
}

/// `/v1/bundles/{id}`: `small` is a 10,000-entry manifest, `large` a 200,000-entry one,
/// `stalled` three 1 MiB jars whose bodies stop halfway, `endless` a body that never ends;
/// every other blob is answered after 200 ms.
async fn serve() -> Result<String> {
    let small = manifest(10_000);
    let large = manifest(200_000);
    let blob = stalled_blob();
    let stalled = Bytes::from(
        serde_json::to_vec(&BundleManifest {
            id: "stalled".into(),
            entries: (0..3)
                .map(|i| BundleEntry {
                    name: format!("stall{i}.jar"),
                    digest: Digest::of(&blob),
                    size: blob.len() as u64,
                    kind: EntryKind::Jar,
                })
                .collect(),
            owner: None,
            created_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        })
        .unwrap_or_default(),
    );
    let app = Router::new()
        .route(
            "/v1/bundles/{id}",
            get(move |Path(id): Path<String>| {
                let (small, large, stalled) = (small.clone(), large.clone(), stalled.clone());
                async move {
                    match id.as_str() {
                        "small" => small.into_response(),
                        "large" => large.into_response(),
                        "stalled" => stalled.into_response(),
                        _ => Body::from_stream(
                            futures::stream::once(async { Bytes::from_static(b"{\"id\":\"") })
                                .chain(futures::stream::repeat(Bytes::from(vec![b'x'; 1 << 16])))
                                .map(Ok::<_, std::io::Error>),
                        )
                        .into_response(),
                    }
                }
            }),
        )
        .route(
            "/v1/bundles/{id}/blobs/{digest}",
            get(|Path((id, _)): Path<(String, String)>| async move {
                if id == "stalled" {
                    let half = Bytes::from(stalled_blob()[..1 << 19].to_vec());
                    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(half) })
                        .chain(futures::stream::pending());
                    return (
                        [("content-length", (1u32 << 20).to_string())],
                        Body::from_stream(body),
                    )
                        .into_response();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                "x".into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Transfers cut off by the deadline in the middle of their bodies leave no temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_the_deadline_cuts_off_leave_no_temporary_file() -> Result<()> {
    let server = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.bundle_args(&server, "stalled", "token-token-token")?;
    args.extend(["--timeout".into(), "2s".into()]);
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "finished: {err}");
    ensure!(err.contains("deadline of 2s"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&dirs.jars)?
        .map(|f| f.map(|f| f.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_the_whole_run_whatever_the_number_of_entries() -> Result<()> {
    let server = serve().await?;
    for bundle in ["small", "large"] {
        let dirs = Dirs::new()?;
        let mut args = dirs.bundle_args(&server, bundle, "token-token-token")?;
        args.extend(["--timeout".into(), "3s".into()]);
        let started = Instant::now();
        let output = init(&args, &[]).await?;
        let elapsed = started.elapsed();
        let err = stderr(&output);
        ensure!(!output.status.success(), "{bundle}: finished: {err}");
        ensure!(
            elapsed < Duration::from_secs(8),
            "{bundle}: a 3 s deadline took {elapsed:?}"
        );
        ensure!(
            err.contains("deadline of 3s"),
            "{bundle}: {}",
            &err[..err.len().min(2000)]
        );
        // What arrived is whole and recorded; nothing partial sits at a final name.
        for file in std::fs::read_dir(&dirs.jars)? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jar") {
                ensure!(std::fs::read(file.path())? == b"x", "{name} is not whole");
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_never_ends_is_cut_off() -> Result<()> {
    let server = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.bundle_args(&server, "endless", "token-token-token")?;
    args.extend(["--timeout".into(), "60s".into()]);
    let started = Instant::now();
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "{err}");
    ensure!(err.contains("the manifest is larger than"), "{err}");
    ensure!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}
