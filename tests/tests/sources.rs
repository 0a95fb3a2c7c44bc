//! `POST /v1/sources` (issue 13, in progress): a remote source fetched once by the real server
//! from an HTTP origin of the test that counts its requests, whoever asks and however many at
//! once; found again after a restart from its record; a failing origin asked once per error
//! ttl, every waiter told the same error naming the source.

use anyhow::{Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sparkstage_tests::maven_repo::MavenRepo;
use sparkstage_tests::server::Server;

async fn ask(server: &Server, body: Value) -> Result<(StatusCode, Value)> {
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/sources", server.url()))
        .json(&body)
        .send()
        .await?;
    Ok((answer.status(), answer.json().await?))
}

/// One sweep and one garbage collection now (`POST /v1/gc`): what it answered.
async fn collect(server: &Server) -> Result<Value> {
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/gc", server.url()))
        .json(&json!({"dry_run": false}))
        .send()
        .await?;
    ensure!(answer.status() == StatusCode::OK, "{}", answer.status());
    Ok(answer.json().await?)
}

/// The status of `HEAD /v1/blobs/<digest>` for the digest of a source's answer.
async fn blob_status(server: &Server, answer: &Value) -> Result<StatusCode> {
    let url = format!(
        "{}/v1/blobs/{}",
        server.url(),
        answer["digest"].as_str().unwrap_or_default()
    );
    Ok(reqwest::Client::new().head(url).send().await?.status())
}

/// `sparkstage_source_requests_total` by outcome.
async fn source_requests(server: &Server) -> Result<std::collections::BTreeMap<String, u64>> {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("sparkstage_source_requests_total{outcome=\""))
        .filter_map(|l| {
            let (outcome, rest) = l.split_once("\"}")?;
            Some((outcome.to_owned(), rest.trim().parse().ok()?))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_fetched_once_for_everyone() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    std::fs::create_dir_all(origin_root.path().join("lib"))?;
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 13 + i / 999) as u8).collect();
    std::fs::write(origin_root.path().join("lib/udf.jar"), &data)?;
    let origin =
        MavenRepo::serve(origin_root.path(), std::time::Duration::from_millis(300)).await?;
    let url = format!("{}lib/udf.jar", origin.url);
    let store = tempfile::tempdir()?;
    let storage = store.path().display().to_string();
    let server = Server::start(&["--storage", &storage], &[]).await?;
    let expected = sparkstage_api::Digest::of(&data).to_string();

    let asks = (0..50).map(|_| ask(&server, json!({ "url": url })));
    for answer in futures::future::join_all(asks).await {
        let (status, body) = answer?;
        ensure!(status == StatusCode::OK, "{status} {body}");
        ensure!(
            body["digest"] == expected && body["size"] == data.len(),
            "{body}"
        );
    }
    ensure!(origin.gets("udf.jar") == 1, "{:?}", origin.requests());
    let outcomes = source_requests(&server).await?;
    ensure!(
        outcomes["fetched"] == 1 && outcomes["joined"] + outcomes["recorded"] == 49,
        "{outcomes:?}"
    );
    ensure!(
        server
            .metric("sparkstage_source_origin_bytes_total")
            .await?
            == data.len() as u64
    );

    // A digest that is the source's: answered from the record.
    let (status, _) = ask(&server, json!({ "url": url, "digest": expected })).await?;
    ensure!(status == StatusCode::OK && origin.gets("udf.jar") == 1);

    // After a restart, from the record in the store.
    drop(server);
    let server = Server::start(&["--storage", &storage], &[]).await?;
    let (status, body) = ask(&server, json!({ "url": url })).await?;
    ensure!(
        status == StatusCode::OK && body["digest"] == expected,
        "{body}"
    );
    ensure!(origin.gets("udf.jar") == 1, "{:?}", origin.requests());

    // A missing source: every waiter gets the error naming it, and the origin is asked once.
    let missing = format!("{}lib/missing.jar", origin.url);
    let asks = (0..10).map(|_| ask(&server, json!({ "url": missing })));
    for answer in futures::future::join_all(asks).await {
        let (status, body) = answer?;
        ensure!(!status.is_success(), "{status}");
        let message = body["message"].as_str().unwrap_or_default();
        ensure!(message.contains("lib/missing.jar"), "{body}");
    }
    let (_, _) = ask(&server, json!({ "url": missing })).await?;
    ensure!(origin.gets("missing.jar") == 1, "{:?}", origin.requests());

    // Credentials in a source are refused before anything is fetched.
    let (status, body) = ask(
        &server,
        json!({ "url": "https://user:secret@example.com/a.jar" }),
    )
    .await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}");
    ensure!(!body.to_string().contains("secret"), "{body}");
    Ok(())
}

/// Two replicas on one S3 bucket (moto): a source one of them fetched is not fetched again
/// through the other, which finds its record and its blob; one both miss at once is fetched
/// once, under a lease in the bucket; an object-store origin (a second
/// bucket of the same moto) is read through the server's own credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_bucket_share_what_one_fetched() -> Result<()> {
    use sparkstage_tests::peers::{Moto, ObjectStorePeer};
    let origin_root = tempfile::tempdir()?;
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    std::fs::write(origin_root.path().join("shared.jar"), &data)?;
    let origin = MavenRepo::serve(origin_root.path(), std::time::Duration::ZERO).await?;
    let url = format!("{}shared.jar", origin.url);
    let moto = Moto::start().await?;
    moto.create_bucket("shared").await?;
    let env = moto.env();
    let a = Server::start(&["--storage", "s3://shared/sparkstage"], &env).await?;
    let b = Server::start(&["--storage", "s3://shared/sparkstage"], &env).await?;
    let (status, first) = ask(&a, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK, "{first}");
    let (status, second) = ask(&b, json!({ "url": url })).await?;
    ensure!(
        status == StatusCode::OK && second == first,
        "{second} != {first}"
    );
    ensure!(origin.gets("shared.jar") == 1, "{:?}", origin.requests());

    // Both replicas miss one source at the same moment: one fetches it under the source's
    // lease in the bucket, the other waits for that fetch's record.
    let slow = MavenRepo::serve(origin_root.path(), std::time::Duration::from_millis(800)).await?;
    let url = format!("{}shared.jar", slow.url);
    let (first, second) = tokio::join!(
        ask(&a, json!({ "url": url })),
        ask(&b, json!({ "url": url }))
    );
    let ((status_a, first), (status_b, second)) = (first?, second?);
    ensure!(status_a == StatusCode::OK && status_b == StatusCode::OK);
    ensure!(first == second, "{first} != {second}");
    ensure!(slow.gets("shared.jar") == 1, "{:?}", slow.requests());
    let joined = |outcomes: std::collections::BTreeMap<String, u64>| {
        outcomes.get("joined_replica").copied().unwrap_or(0)
    };
    ensure!(
        joined(source_requests(&a).await?) + joined(source_requests(&b).await?) == 1,
        "one replica waited for the other"
    );

    moto.create_bucket("artifacts").await?;
    let object = b"an object in a bucket".to_vec();
    object_store::ObjectStoreExt::put(
        &moto.store("artifacts")?,
        &object_store::path::Path::from("lib/x.jar"),
        object.clone().into(),
    )
    .await?;
    let (status, body) = ask(&b, json!({ "url": "s3a://artifacts/lib/x.jar" })).await?;
    ensure!(status == StatusCode::OK, "{body}");
    ensure!(
        body["digest"] == sparkstage_api::Digest::of(&object).to_string(),
        "{body}"
    );
    let (status, again) = ask(&a, json!({ "url": "s3://artifacts/lib/x.jar" })).await?;
    ensure!(
        status == StatusCode::OK && again == body,
        "s3a and s3 are one source: {again}"
    );
    Ok(())
}

/// A bundle of source entries (and one uploaded blob) is answered at once (202); fifty
/// `sparkstage-init` processes started right away wait for it, and each gets every file,
/// verified, while the origin serves each source once. A bundle whose source is missing fails
/// every init container with the source named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_get_a_bundle_of_sources_fetched_once() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    std::fs::create_dir_all(origin_root.path().join("libs"))?;
    let jar: Vec<u8> = (0..2u32 << 20).map(|i| (i * 3 + i / 77) as u8).collect();
    let text = b"a,b\n1,2\n".to_vec();
    std::fs::write(origin_root.path().join("libs/udf.jar"), &jar)?;
    std::fs::write(origin_root.path().join("libs/lookup.csv"), &text)?;
    let origin =
        MavenRepo::serve(origin_root.path(), std::time::Duration::from_millis(500)).await?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let uploaded = b"uploaded".to_vec();
    let digest = sparkstage_api::Digest::of(&uploaded);
    reqwest::Client::new()
        .put(format!("{}/v1/blobs/{digest}", server.url()))
        .body(uploaded.clone())
        .send()
        .await?
        .error_for_status()?;
    let create = |sources: Value| {
        let body = json!({
            "entries": [{"name": "app.jar", "digest": digest, "size": uploaded.len(), "kind": "jar"}],
            "sources": sources,
        });
        let url = format!("{}/v1/bundles", server.url());
        async move {
            let answer = reqwest::Client::new().post(url).json(&body).send().await?;
            anyhow::Ok((answer.status(), answer.json::<Value>().await?))
        }
    };
    let (status, created) = create(json!([
        {"kind": "jar", "source": format!("{}libs/udf.jar", origin.url)},
        {"kind": "file", "source": format!("{}libs/lookup.csv", origin.url),
         "digest": sparkstage_api::Digest::of(&text)},
    ]))
    .await?;
    ensure!(
        status == StatusCode::ACCEPTED && created["pending"] == 2,
        "{status} {created}"
    );
    let work = tempfile::tempdir()?;
    let token_file = work.path().join("token");
    std::fs::write(&token_file, created["token"].as_str().unwrap_or_default())?;
    let init = |i: usize, id: &str| {
        let dir = work.path().join(format!("pod-{i}"));
        let mut command =
            tokio::process::Command::new(sparkstage_tests::server::binary("sparkstage-init")?);
        command
            .args(["--server", &server.url(), "--bundle", id, "--token-file"])
            .arg(&token_file)
            .arg("--jars-dir")
            .arg(dir.join("jars"))
            .arg("--files-dir")
            .arg(dir.join("files"));
        anyhow::Ok((dir, command))
    };
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let mut runs = Vec::new();
    for i in 0..50 {
        let (dir, mut command) = init(i, &id)?;
        runs.push(async move { anyhow::Ok((dir, command.output().await?)) });
    }
    for run in futures::future::join_all(runs).await {
        let (dir, output) = run?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(std::fs::read(dir.join("jars/udf.jar"))? == jar);
        ensure!(std::fs::read(dir.join("jars/app.jar"))? == uploaded);
        ensure!(std::fs::read(dir.join("files/lookup.csv"))? == text);
    }
    ensure!(
        origin.gets("udf.jar") == 1 && origin.gets("lookup.csv") == 1,
        "{:?}",
        origin.requests()
    );

    // A missing source: the bundle is accepted, and its pods are told which source failed.
    let (status, created) =
        create(json!([{"kind": "jar", "source": format!("{}libs/gone.jar", origin.url)}])).await?;
    ensure!(status == StatusCode::ACCEPTED, "{created}");
    std::fs::write(&token_file, created["token"].as_str().unwrap_or_default())?;
    let (_, mut command) = init(99, created["id"].as_str().unwrap_or_default())?;
    let output = command.output().await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("libs/gone.jar"),
        "{stderr}"
    );
    Ok(())
}

/// Origin credentials stay on the server: an origin that wants an `Authorization` gets it from
/// the `--maven-credentials-file` (one format, one file), and a server without it is refused
/// with the source named; a failure is remembered for `--source-error-ttl`, then asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_credentials_and_the_error_ttl() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    std::fs::write(origin_root.path().join("private.jar"), b"private bytes")?;
    let origin =
        MavenRepo::serve_authorized(origin_root.path(), "Bearer origin-secret-1234").await?;
    let url = format!("{}private.jar", origin.url);
    let work = tempfile::tempdir()?;
    let credentials = work.path().join("credentials");
    std::fs::write(
        &credentials,
        format!("{} Bearer origin-secret-1234\n", origin.url),
    )?;
    let with = Server::start(
        &[
            "--storage",
            "memory://",
            "--maven-credentials-file",
            &credentials.display().to_string(),
        ],
        &[],
    )
    .await?;
    let (status, body) = ask(&with, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK, "{body}");
    ensure!(body["digest"] == sparkstage_api::Digest::of(b"private bytes").to_string());
    ensure!(
        !with.log().contains("origin-secret-1234"),
        "the credential is never logged"
    );

    let without =
        Server::start(&["--storage", "memory://", "--source-error-ttl", "1s"], &[]).await?;
    let (status, body) = ask(&without, json!({ "url": url })).await?;
    ensure!(!status.is_success(), "{body}");
    ensure!(body.to_string().contains("private.jar"), "{body}");
    let refused = origin.requests().len();
    let (status, _) = ask(&without, json!({ "url": url })).await?;
    ensure!(
        !status.is_success() && origin.requests().len() == refused,
        "remembered"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, _) = ask(&without, json!({ "url": url })).await?;
    ensure!(
        !status.is_success() && origin.requests().len() > refused,
        "asked again"
    );
    Ok(())
}

/// Freshness: after `--source-ttl` a source without a digest is revalidated with a conditional
/// request; unchanged (304), it is not downloaded again; changed, it becomes a new blob while
/// the first one stays what it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_source_is_revalidated_and_a_changed_one_fetched_again() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    let file = origin_root.path().join("moving.jar");
    std::fs::write(&file, b"version one")?;
    let origin = MavenRepo::serve(origin_root.path(), std::time::Duration::ZERO).await?;
    let url = format!("{}moving.jar", origin.url);
    let server = Server::start(&["--storage", "memory://", "--source-ttl", "1s"], &[]).await?;
    let (status, first) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK, "{first}");
    ensure!(origin.downloads("moving.jar") == 1);

    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, again) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK && again == first, "{again}");
    ensure!(
        origin.downloads("moving.jar") == 1
            && origin
                .answers("moving.jar")
                .contains(&(reqwest::Method::HEAD, 304)),
        "revalidated, not downloaded: {:?}",
        origin.answers("moving.jar")
    );
    ensure!(source_requests(&server).await?["revalidated"] == 1);

    std::fs::write(&file, b"version two, longer")?;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, changed) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK, "{changed}");
    ensure!(
        changed["digest"] == sparkstage_api::Digest::of(b"version two, longer").to_string()
            && origin.downloads("moving.jar") == 2,
        "{changed} {:?}",
        origin.answers("moving.jar")
    );
    // The first blob is still there for the bundles made with it.
    let first_digest = first["digest"].as_str().unwrap_or_default();
    let head = reqwest::Client::new()
        .head(format!("{}/v1/blobs/{first_digest}", server.url()))
        .send()
        .await?;
    ensure!(head.status() == StatusCode::OK, "{}", head.status());
    Ok(())
}

/// Eviction through the one garbage collection: a source record keeps its blob for
/// `--cache-max-age` after its last use; past it the sweep deletes the record and the
/// collection the blob, unless a bundle refers to it. An evicted source is fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_past_the_cache_max_age_are_collected_unless_a_bundle_keeps_them() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    std::fs::write(origin_root.path().join("kept.jar"), b"kept by a bundle")?;
    std::fs::write(origin_root.path().join("evicted.jar"), b"kept by nothing")?;
    let origin = MavenRepo::serve(origin_root.path(), std::time::Duration::ZERO).await?;
    let server = Server::start(
        &[
            "--storage",
            "memory://",
            "--cache-max-age",
            "1s",
            "--gc-grace",
            "0s",
        ],
        &[],
    )
    .await?;
    let (_, kept) = ask(&server, json!({ "url": format!("{}kept.jar", origin.url) })).await?;
    let (_, evicted) = ask(
        &server,
        json!({ "url": format!("{}evicted.jar", origin.url) }),
    )
    .await?;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/bundles", server.url()))
        .json(&json!({"entries": [{"name": "kept.jar", "digest": kept["digest"], "size": kept["size"], "kind": "jar"}]}))
        .send()
        .await?;
    ensure!(
        created.status() == StatusCode::CREATED,
        "{}",
        created.status()
    );
    // Within the age both are kept.
    collect(&server).await?;
    ensure!(blob_status(&server, &evicted).await? == StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let gc = collect(&server).await?;
    ensure!(
        blob_status(&server, &evicted).await? == StatusCode::NOT_FOUND,
        "{gc}"
    );
    ensure!(
        blob_status(&server, &kept).await? == StatusCode::OK,
        "a bundle keeps it: {gc}"
    );
    let (status, again) = ask(
        &server,
        json!({ "url": format!("{}evicted.jar", origin.url) }),
    )
    .await?;
    ensure!(
        status == StatusCode::OK && again["digest"] == evicted["digest"],
        "{again}"
    );
    ensure!(
        origin.gets("evicted.jar") == 2,
        "{:?}",
        origin.answers("evicted.jar")
    );
    Ok(())
}

/// `--cache-max-size`: past it the least recently used source records go first, and their
/// blobs with the next collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_sources_go_past_the_cache_max_size() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    std::fs::write(origin_root.path().join("older.jar"), [1u8; 600])?;
    std::fs::write(origin_root.path().join("newer.jar"), [2u8; 600])?;
    let origin = MavenRepo::serve(origin_root.path(), std::time::Duration::ZERO).await?;
    let server = Server::start(
        &[
            "--storage",
            "memory://",
            "--cache-max-size",
            "1000",
            "--gc-grace",
            "0s",
        ],
        &[],
    )
    .await?;
    let (_, older) = ask(
        &server,
        json!({ "url": format!("{}older.jar", origin.url) }),
    )
    .await?;
    // Records are ordered by their expiry, which their last use sets (to the second and more).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, newer) = ask(
        &server,
        json!({ "url": format!("{}newer.jar", origin.url) }),
    )
    .await?;
    collect(&server).await?;
    ensure!(
        blob_status(&server, &older).await? == StatusCode::NOT_FOUND,
        "the older one goes"
    );
    ensure!(
        blob_status(&server, &newer).await? == StatusCode::OK,
        "the newer one stays"
    );
    Ok(())
}

/// Every file under `dir`, recursively (what a store or a spool holds).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The blobs and source records under a local store.
fn kept(store: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = files_under(&store.join("blobs"));
    found.extend(files_under(&store.join("sources")));
    found
}

/// A server on a local store in `work/store`, its spool in `work/spool`, with `more` flags.
async fn on_disk(work: &std::path::Path, more: &[&str]) -> Result<Server> {
    let (store, spool) = (work.join("store"), work.join("spool"));
    let (store, spool) = (store.display().to_string(), spool.display().to_string());
    let mut args = vec!["--storage", &store, "--spool-dir", &spool];
    args.extend_from_slice(more);
    Server::start(&args, &[]).await
}

/// Nothing of a failed fetch is left: no spool file, no blob, no source record.
fn nothing_left(work: &std::path::Path) -> Result<()> {
    let spooled = files_under(&work.join("spool"));
    ensure!(spooled.is_empty(), "{spooled:?}");
    let stored = kept(&work.join("store"));
    ensure!(stored.is_empty(), "nothing partial is stored: {stored:?}");
    Ok(())
}

/// An origin that never stops sending (a jar of the hostile repository, without a
/// `Content-Length`) is cut off at `--max-blob-size` while it streams: the request fails
/// within seconds naming the limit, and neither the spool nor the store keeps a byte of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_sends_without_end_is_cut_off_at_the_limit() -> Result<()> {
    let hostile = sparkstage_tests::hostile_repo::HostileRepo::serve().await?;
    let work = tempfile::tempdir()?;
    let server = on_disk(work.path(), &["--max-blob-size", "8MiB"]).await?;
    let url = format!("{}t/hugejar/1/hugejar-1.jar", hostile.url);
    let started = std::time::Instant::now();
    let (status, body) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::BAD_GATEWAY, "{status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("hugejar-1.jar") && message.contains("larger than the limit of 8388608"),
        "{message}"
    );
    ensure!(started.elapsed() < std::time::Duration::from_secs(30));
    nothing_left(work.path())
}

/// Origin faults (resets, truncated bodies, 500s through the fault proxy): every waiter gets
/// the same error naming the source once the fetch gives up, nothing partial is stored or left
/// in the spool, the failure is remembered for `--source-error-ttl`, and once the origin
/// recovers, the next request after that ttl succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_faults_reach_every_waiter_and_leave_nothing_partial() -> Result<()> {
    use sparkstage_tests::faults::{Fault, FaultConfig, FaultProxy};
    let origin_root = tempfile::tempdir()?;
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 11 + i / 1001) as u8).collect();
    std::fs::write(origin_root.path().join("flaky.jar"), &data)?;
    let origin = MavenRepo::serve(origin_root.path(), std::time::Duration::ZERO).await?;
    let proxy = FaultProxy::start(
        origin.url.trim_end_matches('/'),
        FaultConfig {
            faults: vec![Fault::ResetMidBody, Fault::Truncate, Fault::Status500],
            only_paths_containing: Some("flaky.jar".into()),
            ..FaultConfig::all(1.0, 13)
        },
    )
    .await?;
    let work = tempfile::tempdir()?;
    let server = on_disk(work.path(), &["--source-error-ttl", "3s"]).await?;
    let url = format!("{}/flaky.jar", proxy.url());
    let asks = (0..20).map(|_| ask(&server, json!({ "url": url })));
    let mut messages = std::collections::BTreeSet::new();
    for answer in futures::future::join_all(asks).await {
        let (status, body) = answer?;
        ensure!(status == StatusCode::BAD_GATEWAY, "{status} {body}");
        messages.insert(body["message"].as_str().unwrap_or_default().to_owned());
    }
    ensure!(
        messages.len() == 1,
        "one error for every waiter: {messages:?}"
    );
    let message = messages.first().cloned().unwrap_or_default();
    ensure!(
        message.contains("flaky.jar") && message.contains("gave up after 5 attempts"),
        "{message}"
    );
    let outcomes = source_requests(&server).await?;
    ensure!(
        outcomes.get("failed") == Some(&1),
        "one fetch: {outcomes:?}"
    );
    nothing_left(work.path())?;

    // The origin recovers; the failure is still remembered, then the ttl passes.
    proxy.set_rate(0.0);
    let asked = proxy
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let (status, _) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::BAD_GATEWAY, "remembered: {status}");
    ensure!(
        proxy
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
            == asked
    );
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let (status, body) = ask(&server, json!({ "url": url })).await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    ensure!(
        body["digest"] == sparkstage_api::Digest::of(&data).to_string(),
        "{body}"
    );
    ensure!(blob_status(&server, &body).await? == StatusCode::OK);
    Ok(())
}

/// Fifty `sparkstage-init` processes fetch one bundle whose entry is an object in a bucket of
/// `peer` (moto, fake-gcs-server, azurite), read by the server through a counting proxy in
/// front of the peer: the object's bytes cross the proxy once, and every pod's file verifies.
async fn fifty_pods_fetch_an_object_source_once(
    peer: &impl sparkstage_tests::peers::ObjectStorePeer,
    bucket: &str,
) -> Result<()> {
    use sparkstage_tests::faults::{FaultConfig, FaultProxy};
    peer.create_bucket(bucket).await?;
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 17 + i / 4093) as u8).collect();
    object_store::ObjectStoreExt::put(
        &peer.store(bucket)?,
        &object_store::path::Path::from("libs/udf.jar"),
        data.clone().into(),
    )
    .await?;
    let proxy = FaultProxy::start(&peer.endpoint(), FaultConfig::all(0.0, 1)).await?;
    // The server reaches the peer only through the proxy.
    let env: Vec<(String, String)> = peer
        .env()
        .into_iter()
        .map(|(k, v)| (k, v.replace(&peer.endpoint(), &proxy.url())))
        .collect();
    let server = Server::start(&["--storage", "memory://"], &env).await?;
    let source = format!("{}/libs/udf.jar", peer.url(bucket));
    let created = reqwest::Client::new()
        .post(format!("{}/v1/bundles", server.url()))
        .json(&json!({"entries": [], "sources": [{"kind": "jar", "source": source}]}))
        .send()
        .await?;
    ensure!(
        created.status() == StatusCode::ACCEPTED,
        "{}",
        created.status()
    );
    let created: Value = created.json().await?;
    let work = tempfile::tempdir()?;
    let token_file = work.path().join("token");
    std::fs::write(&token_file, created["token"].as_str().unwrap_or_default())?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let init = sparkstage_tests::server::binary("sparkstage-init")?;
    let runs = (0..50).map(|i| {
        let dir = work.path().join(format!("pod-{i}"));
        let mut command = tokio::process::Command::new(&init);
        command
            .args(["--server", &server.url(), "--bundle", &id, "--token-file"])
            .arg(&token_file)
            .arg("--jars-dir")
            .arg(dir.join("jars"))
            .arg("--files-dir")
            .arg(dir.join("files"));
        async move { anyhow::Ok((dir, command.output().await?)) }
    });
    for run in futures::future::join_all(runs).await {
        let (dir, output) = run?;
        ensure!(
            output.status.success(),
            "{source}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(std::fs::read(dir.join("jars/udf.jar"))? == data, "{source}");
    }
    // One read of the object's bytes (a GET of the object itself; a metadata read for the
    // validators may come before it).
    let log = proxy.stats.log();
    let reads: Vec<_> = log
        .iter()
        .filter(|(method, target)| {
            // GCS's XML API escapes `.` and `/` in the object's name.
            let target: String = url::form_urlencoded::parse(target.as_bytes())
                .map(|(k, v)| format!("{k}{v}"))
                .collect();
            method == "GET" && target.contains("libs/udf.jar") && !target.contains("/storage/v1/")
        })
        .collect();
    ensure!(reads.len() == 1, "{source}: {log:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pods_fetch_a_source_from_each_object_store_once() -> Result<()> {
    use sparkstage_tests::peers::{Azurite, FakeGcs, Moto};
    let (moto, gcs, azurite) = tokio::try_join!(Moto::start(), FakeGcs::start(), Azurite::start())?;
    fifty_pods_fetch_an_object_source_once(&moto, "s3-origin").await?;
    fifty_pods_fetch_an_object_source_once(&gcs, "gcs-origin").await?;
    fifty_pods_fetch_an_object_source_once(&azurite, "azure-origin").await?;
    Ok(())
}

/// A request that expects other bytes than the source's fails alone: requests without a digest
/// at the same moment, and right after, get the source; the failure is remembered only for
/// requests expecting the same wrong digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_fails_only_the_requests_that_expect_it() -> Result<()> {
    let origin_root = tempfile::tempdir()?;
    let data = b"the source's own bytes".to_vec();
    std::fs::write(origin_root.path().join("lib.jar"), &data)?;
    let origin =
        MavenRepo::serve(origin_root.path(), std::time::Duration::from_millis(500)).await?;
    let url = format!("{}lib.jar", origin.url);
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let wrong = sparkstage_api::Digest::of(b"other bytes");
    let right = sparkstage_api::Digest::of(&data).to_string();
    let (expecting, plain) = tokio::join!(
        ask(&server, json!({ "url": url, "digest": wrong })),
        ask(&server, json!({ "url": url }))
    );
    let ((status, body), (plain_status, plain_body)) = (expecting?, plain?);
    ensure!(status == StatusCode::BAD_GATEWAY, "{status} {body}");
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("digest mismatch") && m.contains("lib.jar")),
        "{body}"
    );
    ensure!(
        plain_status == StatusCode::OK,
        "{plain_status} {plain_body}"
    );
    ensure!(plain_body["digest"] == right, "{plain_body}");
    let (status, _) = ask(&server, json!({ "url": url, "digest": wrong })).await?;
    ensure!(status == StatusCode::BAD_GATEWAY);
    ensure!(source_requests(&server).await?.get("failure_remembered") == Some(&1));
    let (status, body) = ask(&server, json!({ "url": url })).await?;
    ensure!(
        status == StatusCode::OK && body["digest"] == right,
        "{body}"
    );
    Ok(())
}
