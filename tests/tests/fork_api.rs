//! The 2017 fork's API v0 on the real server (a process), spoken as the fork's clients spoke it:
//! multipart from reqwest (the parts as OkHttp wrote them: the archive typed
//! `multipart/form-data`, the owner `application/json`) and from the real `curl -F`; download with
//! the raw secret; ping on both paths; a wrong secret and an unknown id; a restart in between;
//! the upload token; malformed uploads.

use anyhow::{Result, ensure};
use futures::StreamExt as _;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use sparkstage_api::fork::{OWNER_PART, RESOURCES_PART, RESOURCES_PATH, UploadResponse};
use sparkstage_tests::fork::{OWNER, archive, form, post};
use sparkstage_tests::server::Server;

async fn get(server: &Server, id: &str, secret: Option<&str>) -> Result<reqwest::Response> {
    let mut request = reqwest::Client::new().get(format!("{}{RESOURCES_PATH}/{id}", server.url()));
    if let Some(secret) = secret {
        request = request.header("Authorization", secret);
    }
    Ok(request.send().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forks_clients_upload_download_and_ping() -> Result<()> {
    let data = tempfile::tempdir()?;
    let storage = data.path().display().to_string();
    let server = Server::start(&["--storage", &storage], &[]).await?;
    for path in ["/api/v0/ping", "/api/ping"] {
        let answer = reqwest::get(format!("{}{path}", server.url())).await?;
        ensure!(answer.status() == StatusCode::OK);
        ensure!(answer.text().await? == "pong", "{path}");
    }

    let jars = archive(&[("app.jar", b"the app"), ("dep.jar", &[7u8; 100_000])])?;
    // Without the slash (the curl below too); the fork's own client adds it (`upload`).
    let uploaded = post(
        &format!("{}{RESOURCES_PATH}", server.url()),
        form(jars.clone(), OWNER)?,
    )
    .await?;
    ensure!(sparkstage_api::bundles::is_bundle_id(&uploaded.resource_id));
    ensure!(
        uploaded.resource_secret.len() >= 43,
        "at least 256 bits: {}",
        uploaded.resource_secret.len()
    );

    // The raw secret, no scheme: the bytes as uploaded.
    let answer = get(
        &server,
        &uploaded.resource_id,
        Some(&uploaded.resource_secret),
    )
    .await?;
    ensure!(answer.status() == StatusCode::OK);
    ensure!(answer.headers()["content-type"] == "application/octet-stream");
    ensure!(answer.bytes().await? == jars, "the bytes as uploaded");

    // A wrong secret and an unknown id look the same.
    let wrong = get(&server, &uploaded.resource_id, Some("not-the-secret")).await?;
    let unknown = get(&server, &"0".repeat(32), Some(&uploaded.resource_secret)).await?;
    ensure!(wrong.status() == StatusCode::NOT_FOUND && unknown.status() == StatusCode::NOT_FOUND);
    ensure!(wrong.text().await? == unknown.text().await?);
    let none = get(&server, &uploaded.resource_id, None).await?;
    ensure!(
        none.status() == StatusCode::UNAUTHORIZED,
        "{}",
        none.status()
    );

    // The resource is a bundle of one archive entry, owned as the fork's owner said.
    let manifest = server
        .manifest(&uploaded.resource_id, &uploaded.resource_secret)
        .await?;
    ensure!(
        manifest["owner"]["namespace"] == "analytics"
            && manifest["owner"]["labels"]["spark-app-selector"] == "spark-1"
            && manifest["entries"][0]["kind"] == "archive"
            && manifest["entries"][0]["size"] == jars.len(),
        "{manifest}"
    );

    // The real curl -F, as a shell script of the fork's time would send it.
    let files = archive(&[("lookup.csv", b"a,b\n")])?;
    let file = data.path().join("files.tgz");
    std::fs::write(&file, &files)?;
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .arg("-F")
        .arg(format!(
            "{RESOURCES_PART}=@{};type=multipart/form-data",
            file.display()
        ))
        .arg("-F")
        .arg(format!("{OWNER_PART}={OWNER};type=application/json"))
        .arg(format!("{}{RESOURCES_PATH}", server.url()))
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "curl: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let by_curl: UploadResponse = serde_json::from_slice(&output.stdout)?;

    // A restart loses nothing.
    drop(server);
    let server = Server::start(&["--storage", &storage], &[]).await?;
    for (uploaded, bytes) in [(&uploaded, &jars), (&by_curl, &files)] {
        let answer = get(
            &server,
            &uploaded.resource_id,
            Some(&uploaded.resource_secret),
        )
        .await?;
        ensure!(answer.status() == StatusCode::OK, "after the restart");
        ensure!(answer.bytes().await? == *bytes);
    }

    // Malformed uploads: a clear 400 each, nothing created.
    let listed = |server: &Server| {
        let url = format!("{}/v1/bundles", server.url());
        async move {
            let list: serde_json::Value = reqwest::get(url).await?.json().await?;
            Ok::<_, anyhow::Error>(list["bundles"].as_array().map_or(0, Vec::len))
        }
    };
    let before = listed(&server).await?;
    for (what, form) in [
        (
            "ownerType",
            form(jars.clone(), &OWNER.replace("\"Pod\"", "\"Deployment\""))?,
        ),
        (
            "resourcesOwner",
            Form::new().part(RESOURCES_PART, Part::bytes(jars.clone())),
        ),
        ("resources", Form::new().text(OWNER_PART, OWNER)),
        ("not", form(jars.clone(), "not json")?),
    ] {
        let answer = reqwest::Client::new()
            .post(format!("{}{RESOURCES_PATH}", server.url()))
            .multipart(form)
            .send()
            .await?;
        ensure!(
            answer.status() == StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.status()
        );
        let body = answer.text().await?;
        ensure!(body.contains(what), "{what}: {body}");
    }
    ensure!(listed(&server).await? == before, "nothing created");
    Ok(())
}

/// With `--upload-token-file`, the v0 upload needs the token as a bearer token (the fork's
/// clients sent none); downloads need only the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_token_applies_to_v0() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("upload-token");
    std::fs::write(&token_file, "v0-upload-token-0123456789abcdef")?;
    let server = Server::start(
        &[
            "--storage",
            "memory://",
            "--upload-token-file",
            &token_file.display().to_string(),
        ],
        &[],
    )
    .await?;
    let jars = archive(&[("app.jar", b"the app")])?;
    let post = |bearer: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}{RESOURCES_PATH}", server.url()))
            .multipart(form(jars.clone(), OWNER).expect("form"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    ensure!(post(None).await?.status() == StatusCode::UNAUTHORIZED);
    ensure!(post(Some("wrong")).await?.status() == StatusCode::UNAUTHORIZED);
    let answer = post(Some("v0-upload-token-0123456789abcdef")).await?;
    ensure!(answer.status() == StatusCode::OK);
    let uploaded: UploadResponse = answer.json().await?;
    let answer = get(
        &server,
        &uploaded.resource_id,
        Some(&uploaded.resource_secret),
    )
    .await?;
    ensure!(answer.bytes().await? == jars);
    Ok(())
}

/// A v0 upload is streamed, never held: four uploads of 128 MiB at once (generated on the fly,
/// the resources part sent with its length) leave the server's peak RSS in tens of MiB, and
/// each is stored with the digest of what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_v0_uploads_keep_the_servers_memory_flat() -> Result<()> {
    use sha2::{Digest as _, Sha256};
    const SIZE: u64 = 128 << 20;
    const CHUNK: usize = 1 << 20;
    let store = tempfile::tempdir()?;
    let server = Server::start(
        &[
            "--storage",
            &store.path().display().to_string(),
            "--no-fsync",
        ],
        &[],
    )
    .await?;
    let before_mib = sparkstage_tests::rss::peak_kib(server.process.id())? >> 10;
    let chunk = |seed: u8, i: usize| -> Vec<u8> {
        (0..CHUNK)
            .map(|j| (j as u8).wrapping_mul(31) ^ seed ^ (i as u8))
            .collect()
    };
    let uploads = (0..4u8).map(|seed| {
        let url = server.url();
        async move {
            let mut hasher = Sha256::new();
            for i in 0..(SIZE as usize / CHUNK) {
                hasher.update(chunk(seed, i));
            }
            let expected = sparkstage_api::Digest::from_bytes(hasher.finalize().into());
            let body = futures::stream::iter(0..(SIZE as usize / CHUNK))
                .map(move |i| Ok::<_, std::io::Error>(chunk(seed, i)));
            let form = Form::new()
                .part(
                    RESOURCES_PART,
                    Part::stream_with_length(reqwest::Body::wrap_stream(body), SIZE)
                        .mime_str("multipart/form-data")?,
                )
                .part(OWNER_PART, Part::text(OWNER).mime_str("application/json")?);
            let uploaded = post(&format!("{url}{RESOURCES_PATH}/"), form).await?;
            anyhow::Ok((uploaded, expected))
        }
    });
    for result in futures::future::join_all(uploads).await {
        let (uploaded, expected) = result.map_err(|e| e.context(server.log()))?;
        let manifest: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/v1/bundles/{}",
                server.url(),
                uploaded.resource_id
            ))
            .bearer_auth(&uploaded.resource_secret)
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            manifest["entries"][0]["digest"] == expected.to_string()
                && manifest["entries"][0]["size"] == SIZE,
            "{manifest}"
        );
    }
    let peak_mib = sparkstage_tests::rss::peak_kib(server.process.id())? >> 10;
    eprintln!(
        "server peak RSS: {before_mib} MiB at start, {peak_mib} MiB after 4 x 128 MiB v0 uploads"
    );
    ensure!(
        peak_mib < 64,
        "the server's peak RSS reached {peak_mib} MiB (at start: {before_mib} MiB)"
    );
    Ok(())
}
