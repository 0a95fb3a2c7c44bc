//! `sparkstage-server` as a real process: SIGKILL during uploads, SIGTERM draining, two
//! replicas on one S3 bucket, the start-up policy for upload tokens, and logs free of secrets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_tests::conformance::test_bytes;
use sparkstage_tests::peers::{Moto, ObjectStorePeer};
use sparkstage_tests::server::{Server, binary};

/// A body that arrives in 128 KiB chunks with a pause between them, so a kill or a signal
/// lands in the middle of it.
fn slow_body(data: Vec<u8>, pause: Duration) -> reqwest::Body {
    let chunks: Vec<Bytes> = Bytes::from(data)
        .chunks(128 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}

use futures::StreamExt;

async fn put(
    client: &reqwest::Client,
    base: &str,
    data: Vec<u8>,
    token: Option<&str>,
) -> Result<reqwest::StatusCode> {
    let digest = Digest::of(&data);
    let mut request = client
        .put(format!("{base}/v1/blobs/{digest}"))
        .header("content-length", data.len())
        .body(data);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    Ok(request.send().await?.status())
}

/// Every file under `blobs/` hashes to its name, and none is a staging leftover.
fn check_blob_dir(root: &Path) -> Result<usize> {
    let mut count = 0;
    let blobs = root.join("blobs/sha256");
    if !blobs.exists() {
        return Ok(0);
    }
    for fan in std::fs::read_dir(&blobs)? {
        for file in std::fs::read_dir(fan?.path())? {
            let path = file?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            ensure!(
                !name.contains('#'),
                "leftover of an interrupted write: {}",
                path.display()
            );
            let data = std::fs::read(&path)?;
            ensure!(
                Digest::of(&data).hex() == name,
                "{} does not hash to its name",
                path.display()
            );
            count += 1;
        }
    }
    Ok(count)
}

/// Staging files (`<key>#<n>`) under `blobs/`: writes a killed server left behind.
fn count_staging_files(root: &Path) -> Result<usize> {
    let blobs = root.join("blobs/sha256");
    let mut count = 0;
    if blobs.exists() {
        for fan in std::fs::read_dir(&blobs)? {
            for file in std::fs::read_dir(fan?.path())? {
                count += usize::from(file?.file_name().to_string_lossy().contains('#'));
            }
        }
    }
    Ok(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_never_exposes_a_partial_blob() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = dir.path().to_str().context("utf-8 path")?.to_owned();
    let acknowledged: Arc<Mutex<HashMap<Digest, usize>>> = Arc::default();
    let client = reqwest::Client::new();
    let mut seed = 1u64;
    let (mut interrupted, mut leftovers) = (0, 0);
    for round in 0..8u64 {
        leftovers += count_staging_files(dir.path())?;
        let mut server = Server::start(&["--storage", &storage], &[]).await?;
        let base = server.url();
        let mut uploads = Vec::new();
        // Per round: three small uploads that finish at once, and three of 3 MiB that arrive
        // over at least 360 ms, so that the kill below lands in the middle of them.
        for i in 0..6 {
            seed += 1;
            let (len, pause) = if i % 2 == 0 {
                (200_000 + (seed as usize * 7919) % 100_000, Duration::ZERO)
            } else {
                (
                    (3 << 20) + (seed as usize * 7919) % 100_000,
                    Duration::from_millis(15),
                )
            };
            let data = test_bytes(len, seed);
            let client = client.clone();
            let base = base.clone();
            let acknowledged = Arc::clone(&acknowledged);
            uploads.push(tokio::spawn(async move {
                let digest = Digest::of(&data);
                let sent = client
                    .put(format!("{base}/v1/blobs/{digest}"))
                    .header("content-length", len)
                    .body(slow_body(data, pause))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(mut acked) = acknowledged.lock() {
                            acked.insert(digest, len);
                        }
                        true
                    }
                    _ => false,
                }
            }));
        }
        // Kill at a different moment each round, after the slow uploads passed their first
        // MiB (when the staging file exists) and before they end.
        tokio::time::sleep(Duration::from_millis(180 + round * 15)).await;
        server.process.kill()?;
        for upload in uploads {
            if !upload.await? {
                interrupted += 1;
            }
        }
    }
    leftovers += count_staging_files(dir.path())?;
    ensure!(
        interrupted > 0,
        "the kills should have interrupted some uploads"
    );
    ensure!(
        leftovers > 0,
        "some kills should have left staging files to clean up"
    );

    // A restart removes the leftovers.
    let server = Server::start(&["--storage", &storage], &[]).await?;
    let on_disk = check_blob_dir(dir.path())?;
    let acked = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    ensure!(
        !acked.is_empty(),
        "some uploads should have been acknowledged before a kill"
    );
    for (digest, len) in &acked {
        let hex = digest.hex();
        let path = dir.path().join("blobs/sha256").join(&hex[..2]).join(&hex);
        let data =
            std::fs::read(&path).with_context(|| format!("acknowledged {digest} is missing"))?;
        ensure!(
            data.len() == *len && Digest::of(&data) == *digest,
            "acknowledged {digest} is intact"
        );
    }
    // The restarted server serves what was acknowledged.
    let missing: Value = client
        .post(format!("{}/v1/blobs/missing", server.url()))
        .json(&json!({"digests": acked.keys().collect::<Vec<_>>()}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(missing == json!({"missing": []}), "{missing}");
    eprintln!(
        "{on_disk} blobs on disk, {} acknowledged, {interrupted} uploads interrupted, \
         {leftovers} staging files cleaned up",
        acked.len()
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_an_upload_in_flight_then_exits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = dir.path().to_str().context("utf-8 path")?.to_owned();
    let mut server = Server::start(&["--storage", &storage], &[]).await?;
    let data = test_bytes(2 << 20, 77);
    let digest = Digest::of(&data);
    let url = format!("{}/v1/blobs/{digest}", server.url());
    let upload = tokio::spawn(async move {
        reqwest::Client::new()
            .put(url)
            .header("content-length", data.len())
            .body(slow_body(data, Duration::from_millis(40)))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.process.signal_group(Signal::SIGTERM)?;
    let status = upload.await??;
    ensure!(
        status == reqwest::StatusCode::CREATED,
        "the upload finished: {status}"
    );
    let exit = server.process.terminate(Duration::from_secs(10))?;
    ensure!(exit.success(), "clean exit after draining: {exit}");
    ensure!(check_blob_dir(dir.path())? == 1);
    Ok(())
}

#[tokio::test]
async fn two_servers_on_one_s3_bucket_serve_the_same_bundles() -> Result<()> {
    let moto = Moto::start().await?;
    moto.create_bucket("shared").await?;
    let env = moto.env();
    let a = Server::start(&["--storage", "s3://shared/sparkstage"], &env).await?;
    let b = Server::start(&["--storage", "s3://shared/sparkstage"], &env).await?;
    let client = reqwest::Client::new();

    let jar = test_bytes(11 << 20, 5);
    let digest = Digest::of(&jar);
    ensure!(put(&client, &a.url(), jar.clone(), None).await? == reqwest::StatusCode::CREATED);
    // b sees a's blob, through HEAD and through a second PUT (answered 200, not created).
    ensure!(put(&client, &b.url(), jar.clone(), None).await? == reqwest::StatusCode::OK);
    let seen = client
        .head(format!("{}/v1/blobs/{digest}", b.url()))
        .send()
        .await?;
    ensure!(
        seen.status() == reqwest::StatusCode::OK
            && seen
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                == Some(jar.len().to_string().as_str()),
        "b sees a's blob: {}",
        seen.status()
    );
    let created: Value = client
        .post(format!("{}/v1/bundles", a.url()))
        .json(&json!({"entries": [{"name": "big.jar", "digest": digest, "size": jar.len(), "kind": "jar"}]}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("id")?;
    let token = created["token"].as_str().context("token")?;
    let body = client
        .get(format!("{}/v1/bundles/{id}/blobs/{digest}", b.url()))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    ensure!(
        Digest::of(&body) == digest,
        "downloaded through b what was uploaded through a"
    );
    let deleted = client
        .delete(format!("{}/v1/bundles/{id}", b.url()))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(deleted.status() == reqwest::StatusCode::NO_CONTENT);
    // a's cache holds the record at most --bundle-cache-ttl (5 s by default).
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let gone = client
        .get(format!("{}/v1/bundles/{id}", a.url()))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(gone.status() == reqwest::StatusCode::NOT_FOUND);
    // The objects really are in the bucket, under the prefix.
    let store = moto.store("shared")?;
    let hex = digest.hex();
    let key =
        object_store::path::Path::from(format!("sparkstage/blobs/sha256/{}/{hex}", &hex[..2]));
    ensure!(object_store::ObjectStoreExt::head(&store, &key).await?.size == jar.len() as u64);
    Ok(())
}

#[tokio::test]
async fn refuses_a_public_address_without_an_upload_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = tokio::process::Command::new(binary("sparkstage-server")?)
        .args(["--listen", "0.0.0.0:0", "--storage"])
        .arg(dir.path())
        .env_remove("SPARKSTAGE_UPLOAD_TOKEN")
        .env_remove("SPARKSTAGE_UPLOAD_TOKEN_FILE")
        .env_remove("SPARKSTAGE_INSECURE")
        .output()
        .await?;
    ensure!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("--upload-token-file") && stderr.contains("--insecure"),
        "{stderr}"
    );

    let short = dir.path().join("short-token");
    std::fs::write(&short, "abc\n")?;
    let output = tokio::process::Command::new(binary("sparkstage-server")?)
        .args(["--listen", "127.0.0.1:0", "--upload-token-file"])
        .arg(&short)
        .arg("--storage")
        .arg(dir.path())
        .output()
        .await?;
    ensure!(!output.status.success());
    ensure!(String::from_utf8_lossy(&output.stderr).contains("at least 16"));
    Ok(())
}

#[tokio::test]
async fn no_token_ever_reaches_the_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let upload_token = "upload-token-5b1f0c9e7d3a4f2b";
    let token_file = dir.path().join("upload-token");
    std::fs::write(&token_file, format!("{upload_token}\n"))?;
    let storage = dir.path().join("data");
    let server = Server::start(
        &[
            "--storage",
            storage.to_str().context("utf-8")?,
            "--upload-token-file",
            token_file.to_str().context("utf-8")?,
            "--log-format",
            "json",
        ],
        &[("SPARKSTAGE_LOG".into(), "trace".into())],
    )
    .await?;
    let client = reqwest::Client::new();
    let base = server.url();
    let data = b"spark.driver.memory=4g\n".to_vec();
    let digest = Digest::of(&data);
    ensure!(
        put(&client, &base, data.clone(), Some(upload_token)).await?
            == reqwest::StatusCode::CREATED
    );
    ensure!(
        put(&client, &base, data.clone(), Some("wrong-upload-token-123")).await?
            == reqwest::StatusCode::UNAUTHORIZED
    );
    let created: Value = client
        .post(format!("{base}/v1/bundles"))
        .bearer_auth(upload_token)
        .json(&json!({"entries": [{"name": "spark.conf", "digest": digest, "size": data.len(), "kind": "file"}]}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("id")?;
    let token = created["token"].as_str().context("token")?;
    for auth in [token, "0000wrongbundletoken0000"] {
        client
            .get(format!("{base}/v1/bundles/{id}/blobs/{digest}"))
            .bearer_auth(auth)
            .send()
            .await?;
    }
    client
        .delete(format!("{base}/v1/bundles/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    let log = server.log();
    ensure!(
        log.contains("bundle created") && log.contains(id),
        "the log was captured:\n{log}"
    );
    for secret in [
        upload_token,
        token,
        "0000wrongbundletoken0000",
        "wrong-upload-token-123",
    ] {
        ensure!(!log.contains(secret), "a token appears in the log");
    }
    // The token's hash is not logged either (it is what the store keeps).
    Ok(())
}
