//! `sparkstage-init` as a process against real peers: the staging server (as a process) and a
//! small HTTP origin served by this test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sparkstage_api::Digest;
use sparkstage_tests::conformance::test_bytes;
use sparkstage_tests::server::Server;

mod common;
use common::{Dirs, half_then_broken, init, listing, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_is_fetched_by_kind_and_a_rerun_downloads_nothing() -> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let jar = test_bytes(3 * 1024 * 1024 + 17, 1);
    let data = test_bytes(1000, 2);
    let py = test_bytes(10, 3);
    let (id, token) = server
        .stage(&[
            ("app.jar", "jar", &jar),
            ("data.csv", "file", &data),
            ("lib.py", "pyfile", &py),
        ])
        .await?;
    let dirs = Dirs::new()?;
    let args = dirs.bundle_args(&server.url(), &id, &token)?;

    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    ensure!(!stderr(&output).contains(&token), "the token was printed");
    ensure!(
        stderr(&output).contains("fetched 3 files"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(dirs.jars.join("app.jar"))?, jar);
    assert_eq!(std::fs::read(dirs.files.join("data.csv"))?, data);
    assert_eq!(std::fs::read(dirs.files.join("lib.py"))?, py);
    assert_eq!(
        listing(&dirs.jars),
        [".sparkstage-verified.json", "app.jar"]
    );
    let sent = server.bytes_sent().await?;
    assert_eq!(sent, (jar.len() + data.len() + py.len()) as u64);

    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    ensure!(
        stderr(&output).contains("fetched 0 files") && stderr(&output).contains("3 already"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.bytes_sent().await?, sent, "the re-run downloaded");

    // A file changed behind our back is fetched again.
    std::fs::write(dirs.files.join("data.csv"), b"tampered")?;
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.files.join("data.csv"))?, data);
    assert_eq!(server.bytes_sent().await?, sent + data.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_fails_clearly_and_writes_nothing() -> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let (id, token) = server
        .stage(&[("app.jar", "jar", &test_bytes(100, 4))])
        .await?;
    let dirs = Dirs::new()?;
    let wrong = format!("{token}x");
    let args = dirs.bundle_args(&server.url(), &id, &wrong)?;
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "succeeded with a wrong token");
    ensure!(
        err.contains(&format!("bundle {id}")) && err.contains("bundle_not_found"),
        "{err}"
    );
    ensure!(err.contains("1 attempt)"), "a 404 is not retried: {err}");
    ensure!(
        !err.contains(&wrong) && !err.contains(&token),
        "token printed: {err}"
    );
    assert!(listing(&dirs.jars).is_empty());
    Ok(())
}

const API_KEY: &str = "api-key-0f9e8d7c6b5a";

/// An HTTP origin: `/good.txt`, `/flaky.jar` (503 for the first two requests), `/cut.bin`
/// (the first answer breaks off halfway; later ones honour `Range`).
struct Origin {
    url: String,
    requests: Arc<AtomicUsize>,
    ranges: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct OriginState {
    requests: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    stall: Arc<AtomicUsize>,
    ranges: Arc<std::sync::Mutex<Vec<String>>>,
}

fn good() -> Vec<u8> {
    test_bytes(5000, 10)
}

fn cut_data() -> Vec<u8> {
    test_bytes(256 * 1024, 11)
}

async fn serve_origin() -> Result<Origin> {
    let state = OriginState {
        requests: Arc::default(),
        flaky: Arc::default(),
        cut: Arc::default(),
        stall: Arc::default(),
        ranges: Arc::default(),
    };
    async fn good_file(State(s): State<OriginState>) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        good().into_response()
    }
    async fn flaky(State(s): State<OriginState>) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        if s.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        good().into_response()
    }
    async fn cut(State(s): State<OriginState>, headers: HeaderMap) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        let data = cut_data();
        let len = data.len();
        if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            s.ranges.lock().map(|mut r| r.push(range.to_owned())).ok();
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap_or(0);
            return (
                StatusCode::PARTIAL_CONTENT,
                [
                    (
                        header::CONTENT_RANGE,
                        format!("bytes {start}-{}/{len}", len - 1),
                    ),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
                data[start..].to_vec(),
            )
                .into_response();
        }
        if s.cut.fetch_add(1, Ordering::SeqCst) == 0 {
            return (
                [
                    (header::CONTENT_LENGTH, len.to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
                half_then_broken(&data),
            )
                .into_response();
        }
        ([(header::ACCEPT_RANGES, "bytes")], data).into_response()
    }
    async fn stall(State(s): State<OriginState>) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        if s.stall.fetch_add(1, Ordering::SeqCst) == 0 {
            // Headers, then a body that never sends a byte.
            let never = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
            return ([(header::CONTENT_LENGTH, "5000")], Body::from_stream(never)).into_response();
        }
        good().into_response()
    }
    async fn private(State(s): State<OriginState>, headers: HeaderMap) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        if headers.get("x-api-key").is_some_and(|k| k == API_KEY) {
            good().into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    }
    async fn down(State(s): State<OriginState>) -> Response {
        s.requests.fetch_add(1, Ordering::SeqCst);
        StatusCode::BAD_GATEWAY.into_response()
    }
    let app = Router::new()
        .route("/files/good.txt", get(good_file))
        .route("/files/same/good.txt", get(good_file))
        .route("/flaky.jar", get(flaky))
        .route("/cut.bin", get(cut))
        .route("/down.jar", get(down))
        .route("/private.csv", get(private))
        .route("/stall.txt", get(stall))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Origin {
        url,
        requests: state.requests,
        ranges: state.ranges,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_fails_and_leaves_no_partial_file() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let wrong = Digest::of(b"something else").hex();
    let source = format!(
        "{}/files/good.txt?signature=secret#sha256={wrong}",
        origin.url
    );
    let mut args = dirs.args();
    args.push(source);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "succeeded despite a wrong digest");
    ensure!(
        err.contains(&format!("{}/files/good.txt: digest mismatch", origin.url)),
        "{err}"
    );
    ensure!(!err.contains("secret"), "query string printed: {err}");
    assert!(
        listing(&dirs.files).is_empty(),
        "{:?}",
        listing(&dirs.files)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_503s_are_retried_and_truncated_bodies_resume() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.push(format!(
        "{}/flaky.jar#sha256={}",
        origin.url,
        Digest::of(&good()).hex()
    ));
    args.push(format!(
        "{}/cut.bin#sha256={}",
        origin.url,
        Digest::of(&cut_data()).hex()
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.jars.join("flaky.jar"))?, good());
    assert_eq!(std::fs::read(dirs.files.join("cut.bin"))?, cut_data());
    let ranges = origin.ranges.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let resumed_at: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()?;
    assert!(resumed_at > 0, "{ranges:?}");
    assert_eq!(
        listing(&dirs.files),
        [".sparkstage-verified.json", "cut.bin"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_for_one_name_fail_before_any_download() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.push(format!("{}/files/good.txt", origin.url));
    args.push(format!("{}/files/same/good.txt", origin.url));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = init(&args, &[]).await?;
    ensure!(!output.status.success());
    ensure!(
        stderr(&output).contains("would both write"),
        "{}",
        stderr(&output)
    );
    assert_eq!(origin.requests.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_5xx_fails_within_the_deadline_and_names_the_source() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend(["--timeout".into(), "2s".into()]);
    args.push(format!("{}/down.jar?token=hidden", origin.url));
    args.push(format!("{}/files/good.txt", origin.url));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(
        !output.status.success(),
        "succeeded against a failing origin"
    );
    ensure!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let failed: Vec<&str> = err.lines().filter(|l| l.contains("failed:")).collect();
    ensure!(failed.len() == 1, "{err}");
    ensure!(
        failed[0].contains(&format!("{}/down.jar: ", origin.url))
            && failed[0].contains("502")
            && failed[0].contains("attempts)"),
        "{err}"
    );
    ensure!(!err.contains("hidden"), "query printed: {err}");
    // The good file arrived; the failed one left nothing behind.
    assert_eq!(listing(&dirs.jars), Vec::<String>::new());
    assert_eq!(std::fs::read(dirs.files.join("good.txt"))?, good());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_file_and_environment_name_the_sources() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let spec_dir = tempfile::tempdir()?;
    let spec = spec_dir.path().join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&json!({
            "jars_dir": dirs.jars,
            "sources": [format!("{}/flaky.jar", origin.url)],
        }))?,
    )?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage-init"))
        .env("SPARKSTAGE_SPEC", &spec)
        .env("SPARKSTAGE_FILES_DIR", &dirs.files)
        .env(
            "SPARKSTAGE_SOURCES",
            format!("{}/files/good.txt", origin.url),
        )
        .output()
        .await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.jars.join("flaky.jar"))?, good());
    assert_eq!(std::fs::read(dirs.files.join("good.txt"))?, good());
    Ok(())
}

/// An object put through `peer` is fetched by `sparkstage-init` given only the peer's usual
/// environment; a missing object fails with a clear line and leaves nothing behind.
async fn objects_are_fetched_with_the_usual_environment(
    peer: &impl sparkstage_tests::peers::ObjectStorePeer,
    secret: &str,
) -> Result<()> {
    use object_store::ObjectStoreExt;

    peer.create_bucket("artifacts").await?;
    let store = peer.store("artifacts")?;
    let jar = test_bytes(300_000, 20);
    store
        .put(&"libs/dep.jar".into(), jar.clone().into())
        .await?;
    let base = peer.url("artifacts");
    let dirs = Dirs::new()?;
    let run = |sources: Vec<String>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage-init"));
        command
            .args(dirs.args())
            .args(sources)
            .args(["--timeout", "20s"])
            .envs(peer.env());
        async move { command.output().await }
    };
    let output = run(vec![format!(
        "{base}/libs/dep.jar#sha256={}",
        Digest::of(&jar).hex()
    )])
    .await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.jars.join("dep.jar"))?, jar);

    let output = run(vec![format!("{base}/libs/none.txt")]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "a missing object succeeded");
    ensure!(
        err.contains(&format!("{base}/libs/none.txt: no such object")),
        "{err}"
    );
    ensure!(!err.contains(secret), "credentials printed: {err}");
    assert!(listing(&dirs.files).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_via_moto() -> Result<()> {
    use sparkstage_tests::peers::Moto;
    let moto = Moto::start().await?;
    objects_are_fetched_with_the_usual_environment(&moto, Moto::SECRET_ACCESS_KEY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_objects_via_fake_gcs_server() -> Result<()> {
    use sparkstage_tests::peers::FakeGcs;
    let gcs = FakeGcs::start().await?;
    objects_are_fetched_with_the_usual_environment(&gcs, "PRIVATE KEY").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_objects_via_azurite() -> Result<()> {
    use sparkstage_tests::peers::Azurite;
    let azurite = Azurite::start().await?;
    objects_are_fetched_with_the_usual_environment(&azurite, Azurite::ACCOUNT_KEY).await
}

/// Through the library, with the clock-dependent knobs made small: a body that stalls is
/// abandoned after the read timeout and fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_retried_after_the_read_timeout() -> Result<()> {
    use sparkstage_init::spec::{Args, Config};
    use std::time::Duration;

    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let mut args = vec!["sparkstage-init".to_owned()];
    args.extend(dirs.args());
    args.push(format!("{}/stall.txt", origin.url));
    let mut config = Config::from_args(<Args as clap::Parser>::try_parse_from(args)?)?;
    config.max_attempts = 3;
    config.read_timeout = Duration::from_millis(300);
    let options = sparkstage_init::Options {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        jitter: Arc::new(|| 1.0),
    };
    let started = std::time::Instant::now();
    let summary = sparkstage_init::run(&config, &options)
        .await
        .map_err(|e| anyhow::anyhow!(e.lines().join("\n")))?;
    assert_eq!(summary.fetched, 1);
    assert_eq!(std::fs::read(dirs.files.join("stall.txt"))?, good());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_reach_the_origin_and_are_never_printed() -> Result<()> {
    let origin = serve_origin().await?;
    let dirs = Dirs::new()?;
    let url = format!("{}/private.csv", origin.url);

    let mut args = dirs.args();
    args.push(url.clone());
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "fetched without the key: {err}");
    ensure!(err.contains("403") && err.contains("1 attempt)"), "{err}");

    let mut args = dirs.args();
    args.extend(["--header".into(), format!("X-Api-Key: {API_KEY}"), url]);
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    ensure!(!err.contains(API_KEY), "the key was printed: {err}");
    assert_eq!(std::fs::read(dirs.files.join("private.csv"))?, good());
    Ok(())
}
