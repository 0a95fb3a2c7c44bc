//! The HTTP API through its front door (`app(state).oneshot(..)`) on an in-memory store:
//! every rejection the API promises, authentication, ranges and metrics. The same behaviour on
//! real backends is covered by the conformance suite in the `sparkstage-tests` crate.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_server::storage::{self, OpenOptions};
use sparkstage_server::{AppState, Settings, app, ensure_layout};
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn server(settings: Settings, upload_token: Option<&str>) -> Router {
    let storage = storage::open("memory://", &OpenOptions::default()).expect("memory store opens");
    ensure_layout(storage.store.as_ref()).await.expect("layout");
    app(AppState::new(&storage, settings, upload_token))
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }
    fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

fn put_blob(data: &[u8], digest: &Digest) -> Request<Body> {
    Request::put(format!("/v1/blobs/{digest}"))
        .header(header::CONTENT_LENGTH, data.len())
        .body(Body::from(data.to_vec()))
        .expect("request")
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn get_with(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

async fn stored(app: &Router, data: &[u8]) -> Digest {
    let digest = Digest::of(data);
    let answer = send(app, put_blob(data, &digest)).await;
    assert!(
        answer.status.is_success(),
        "upload failed: {:?}",
        answer.body
    );
    digest
}

async fn bundle(app: &Router, entries: Value) -> Answer {
    send(
        app,
        post_json("/v1/bundles", &json!({ "entries": entries })),
    )
    .await
}

#[tokio::test]
async fn digest_and_size_mismatches_store_nothing() -> TestResult {
    let app = server(Settings::default(), None).await;
    let claimed = Digest::of(b"the real content");
    let wrong = send(&app, put_blob(b"other content", &claimed)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.code(), "digest_mismatch");
    let message = wrong.json()["message"].as_str().unwrap_or("").to_owned();
    assert!(message.contains(&claimed.to_string()), "{message}");
    assert!(
        message.contains(&Digest::of(b"other content").to_string()),
        "{message}"
    );

    // Declared length longer than the body.
    let short = Request::put(format!("/v1/blobs/{claimed}"))
        .header(header::CONTENT_LENGTH, "1000")
        .body(Body::from("the real content"))?;
    let short = send(&app, short).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(short.code(), "size_mismatch");

    let head = Request::head(format!("/v1/blobs/{claimed}")).body(Body::empty())?;
    assert_eq!(send(&app, head).await.status, StatusCode::NOT_FOUND);

    // The right bytes are then accepted, once.
    let ok = send(&app, put_blob(b"the real content", &claimed)).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.json()["created"], json!(true));
    let again = send(&app, put_blob(b"the real content", &claimed)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["created"], json!(false));
    let head = Request::head(format!("/v1/blobs/{claimed}")).body(Body::empty())?;
    let head = send(&app, head).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers[header::CONTENT_LENGTH], "16");
    Ok(())
}

#[tokio::test]
async fn malformed_digests_are_rejected() -> TestResult {
    let app = server(Settings::default(), None).await;
    for bad in ["sha256:xyz", "md5:abc", "sha256:ABCDEF", "nothing"] {
        let request = Request::put(format!("/v1/blobs/{bad}")).body(Body::from("x"))?;
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.code(), "bad_digest", "{bad}");
    }
    let missing = send(
        &app,
        post_json("/v1/blobs/missing", &json!({"digests": ["sha256:1"]})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.code(), "bad_json");
    Ok(())
}

#[tokio::test]
async fn blob_size_limit_is_413_with_or_without_content_length() -> TestResult {
    let settings = Settings {
        max_blob_size: 1000,
        ..Settings::default()
    };
    let app = server(settings, None).await;
    let data = vec![7u8; 1001];
    let digest = Digest::of(&data);
    let declared = send(&app, put_blob(&data, &digest)).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.code(), "too_large");
    // Chunked: the limit is found while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![7u8; 600])),
        Ok(Bytes::from(vec![7u8; 401])),
    ];
    let request = Request::put(format!("/v1/blobs/{digest}"))
        .body(Body::from_stream(futures::stream::iter(chunks)))?;
    let streamed = send(&app, request).await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    let head = Request::head(format!("/v1/blobs/{digest}")).body(Body::empty())?;
    assert_eq!(send(&app, head).await.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn a_stalled_body_times_out_with_408() -> TestResult {
    let settings = Settings {
        body_idle_timeout: Duration::from_millis(200),
        ..Settings::default()
    };
    let app = server(settings, None).await;
    let digest = Digest::of(b"never completes");
    let first: Result<Bytes, std::io::Error> = Ok(Bytes::from_static(b"never "));
    let stream = futures::StreamExt::chain(
        futures::stream::iter(vec![first]),
        futures::stream::pending(),
    );
    let request = Request::put(format!("/v1/blobs/{digest}")).body(Body::from_stream(stream))?;
    let answer = tokio::time::timeout(Duration::from_secs(10), send(&app, request)).await?;
    assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(answer.code(), "body_timeout");
    // The JSON calls too, resolve included: the client's stall, never the storage's.
    for path in ["/v1/bundles", "/v1/blobs/missing", "/v1/resolve"] {
        let first: Result<Bytes, std::io::Error> = Ok(Bytes::from_static(b"{\"entr"));
        let stream = futures::StreamExt::chain(
            futures::stream::iter(vec![first]),
            futures::stream::pending(),
        );
        let answer = post_json_stream(&app, path, stream).await?;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            "{path}: {}",
            answer.message()
        );
    }
    Ok(())
}

/// `POST path` with a JSON body that `stream` sends; the answer within 10 s.
async fn post_json_stream(
    app: &Router,
    path: &str,
    stream: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Result<Answer, Box<dyn std::error::Error>> {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))?;
    Ok(tokio::time::timeout(Duration::from_secs(10), send(app, request)).await?)
}

/// A body that trickles (never idle for long, never done) meets the JSON calls' deadline: 408,
/// not the 503 that blames the storage.
#[tokio::test]
async fn a_trickling_body_meets_the_deadline_with_408() -> TestResult {
    let settings = Settings {
        body_idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let app = server(settings, None).await;
    let stream = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
    });
    let answer = post_json_stream(&app, "/v1/bundles", stream).await?;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
        "{}",
        answer.message()
    );
    Ok(())
}

#[tokio::test]
async fn find_missing_answers_in_request_order_without_duplicates() -> TestResult {
    let app = server(Settings::default(), None).await;
    let a = stored(&app, b"a").await;
    let b = Digest::of(b"b");
    let c = Digest::of(b"c");
    let answer = send(
        &app,
        post_json("/v1/blobs/missing", &json!({"digests": [c, a, b, c]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"missing": [c, b]}));
    Ok(())
}

#[tokio::test]
async fn bundle_rejections() -> TestResult {
    let settings = Settings {
        max_bundle_entries: 3,
        ..Settings::default()
    };
    let app = server(settings, None).await;
    let d = stored(&app, b"jar bytes").await;
    let entry =
        |name: &str, kind: &str| json!({"name": name, "digest": d, "size": 9, "kind": kind});

    for name in [
        "",
        "/abs.jar",
        "..",
        "../x.jar",
        "a/b.jar",
        "nul\0.jar",
        "ctl\u{1b}.jar",
    ] {
        let answer = bundle(&app, json!([entry(name, "jar")])).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(answer.code(), "bad_name", "{name:?}");
    }
    let dup = bundle(&app, json!([entry("a.jar", "jar"), entry("a.jar", "jar")])).await;
    assert_eq!(
        (dup.status, dup.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_name")
    );
    // A file and a pyfile land in one directory of the pod: no init container could write both.
    let one_dir = bundle(
        &app,
        json!([entry("a.py", "file"), entry("a.py", "pyfile")]),
    )
    .await;
    assert_eq!(
        (one_dir.status, one_dir.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_name")
    );
    // A jar and a file go to different directories.
    let other_dirs = bundle(&app, json!([entry("a.py", "jar"), entry("a.py", "file")])).await;
    assert_eq!(other_dirs.status, StatusCode::CREATED);
    // The names the init container writes itself are reserved.
    for reserved in [
        ".real.jar.sparkstage-tmp",
        ".sparkstage-verified.json",
        ".sparkstage-verified.json.tmp",
    ] {
        let answer = bundle(
            &app,
            json!([entry("real.jar", "jar"), entry(reserved, "jar")]),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_name"),
            "{reserved}"
        );
        assert!(
            answer.message().contains("reserved"),
            "{}",
            answer.message()
        );
    }

    let too_many = bundle(
        &app,
        json!([
            entry("1", "file"),
            entry("2", "file"),
            entry("3", "file"),
            entry("4", "file")
        ]),
    )
    .await;
    assert_eq!(
        (too_many.status, too_many.code().as_str()),
        (StatusCode::BAD_REQUEST, "too_many_entries")
    );
    let empty = bundle(&app, json!([])).await;
    assert_eq!(
        (empty.status, empty.code().as_str()),
        (StatusCode::BAD_REQUEST, "empty_bundle")
    );

    let wrong_size = bundle(
        &app,
        json!([{"name": "a.jar", "digest": d, "size": 10, "kind": "jar"}]),
    )
    .await;
    assert_eq!(
        (wrong_size.status, wrong_size.code().as_str()),
        (StatusCode::BAD_REQUEST, "size_mismatch")
    );

    let absent = Digest::of(b"never uploaded");
    let missing = bundle(&app, json!([entry("a.jar", "jar"), {"name": "b.jar", "digest": absent, "size": 1, "kind": "jar"}])).await;
    assert_eq!(missing.status, StatusCode::CONFLICT);
    assert_eq!(missing.json()["missing"], json!([absent]));

    for ttl in ["soon", "0s", "1000d"] {
        let answer = send(
            &app,
            post_json(
                "/v1/bundles",
                &json!({"entries": [entry("a.jar", "jar")], "ttl": ttl}),
            ),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_ttl"),
            "{ttl}"
        );
    }

    let unknown_field = send(
        &app,
        post_json(
            "/v1/bundles",
            &json!({"entries": [entry("a.jar", "jar")], "colour": 1}),
        ),
    )
    .await;
    assert_eq!(unknown_field.code(), "bad_json");
    assert!(
        unknown_field.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("colour")
    );
    let unknown_kind = bundle(&app, json!([entry("a.jar", "zip")])).await;
    assert_eq!(unknown_kind.code(), "bad_json");
    let malformed = Request::post("/v1/bundles")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"entries\": ["))?;
    let malformed = send(&app, malformed).await;
    assert_eq!(
        (malformed.status, malformed.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_json")
    );
    let not_json = Request::post("/v1/bundles").body(Body::from("entries"))?;
    assert_eq!(
        send(&app, not_json).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    Ok(())
}

#[tokio::test]
async fn unknown_bundle_and_wrong_token_look_the_same() -> TestResult {
    let app = server(Settings::default(), None).await;
    let d = stored(&app, b"content").await;
    let created = bundle(
        &app,
        json!([{"name": "f.txt", "digest": d, "size": 7, "kind": "file"}]),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_str().unwrap_or("").to_owned();
    let token = created.json()["token"].as_str().unwrap_or("").to_owned();
    assert_eq!(token.len(), 64);

    let ok = send(&app, get_with(&format!("/v1/bundles/{id}"), &token)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["entries"][0]["name"], json!("f.txt"));

    let wrong_token = send(
        &app,
        get_with(&format!("/v1/bundles/{id}"), &"0".repeat(64)),
    )
    .await;
    let unknown_id = send(
        &app,
        get_with(&format!("/v1/bundles/{}", "1".repeat(32)), &token),
    )
    .await;
    let garbage_id = send(&app, get_with("/v1/bundles/..%2f..%2fetc", &token)).await;
    assert_eq!(wrong_token.status, StatusCode::NOT_FOUND);
    assert_eq!(wrong_token.body, unknown_id.body);
    assert_eq!(wrong_token.body, garbage_id.body);
    let blob_wrong_token = send(&app, get_with(&format!("/v1/bundles/{id}/blobs/{d}"), "x")).await;
    assert_eq!(blob_wrong_token.body, unknown_id.body);

    let no_header = Request::get(format!("/v1/bundles/{id}")).body(Body::empty())?;
    let no_header = send(&app, no_header).await;
    assert_eq!(no_header.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_header.headers[header::WWW_AUTHENTICATE], "Bearer");

    let other = Digest::of(b"not in the bundle");
    let not_in = send(
        &app,
        get_with(&format!("/v1/bundles/{id}/blobs/{other}"), &token),
    )
    .await;
    assert_eq!(
        (not_in.status, not_in.code().as_str()),
        (StatusCode::NOT_FOUND, "blob_not_in_bundle")
    );

    let delete = Request::delete(format!("/v1/bundles/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())?;
    assert_eq!(send(&app, delete).await.status, StatusCode::NO_CONTENT);
    let gone = send(&app, get_with(&format!("/v1/bundles/{id}"), &token)).await;
    assert_eq!(gone.body, unknown_id.body);
    Ok(())
}

#[tokio::test]
async fn an_expired_bundle_answers_as_an_unknown_one() -> TestResult {
    use sparkstage_server::clock::ManualClock;
    let storage = storage::open("memory://", &OpenOptions::default())?;
    ensure_layout(storage.store.as_ref()).await?;
    let clock = ManualClock::new(chrono::Utc::now());
    let injected = sparkstage_server::Injected {
        clock: std::sync::Arc::new(clock.clone()),
        ..Default::default()
    };
    let app = app(AppState::with(
        &storage,
        Settings::default(),
        None,
        injected,
    ));
    let d = stored(&app, b"short-lived").await;
    let created = send(&app, post_json("/v1/bundles", &json!({"entries": [{"name": "f", "digest": d, "size": 11, "kind": "file"}], "ttl": "1s"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_str().unwrap_or("").to_owned();
    let token = created.json()["token"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        send(&app, get_with(&format!("/v1/bundles/{id}"), &token))
            .await
            .status,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    let expired = send(&app, get_with(&format!("/v1/bundles/{id}"), &token)).await;
    assert_eq!(
        (expired.status, expired.code().as_str()),
        (StatusCode::NOT_FOUND, "bundle_not_found")
    );
    Ok(())
}

#[tokio::test]
async fn ranges_etags_and_conditional_gets() -> TestResult {
    let app = server(Settings::default(), None).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let d = stored(&app, &data).await;
    let created = bundle(
        &app,
        json!([{"name": "r.bin", "digest": d, "size": 5000, "kind": "file"}]),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap_or("").to_owned();
    let token = created.json()["token"].as_str().unwrap_or("").to_owned();
    let uri = format!("/v1/bundles/{id}/blobs/{d}");

    let full = send(&app, get_with(&uri, &token)).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(&full.body[..], &data[..]);
    assert_eq!(full.headers[header::ETAG], format!("\"{d}\""));
    assert_eq!(full.headers[header::CONTENT_LENGTH], "5000");

    let mut ranged = get_with(&uri, &token);
    ranged
        .headers_mut()
        .insert(header::RANGE, "bytes=100-199".parse()?);
    let part = send(&app, ranged).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], &data[100..200]);
    assert_eq!(part.headers[header::CONTENT_RANGE], "bytes 100-199/5000");

    let mut suffix = get_with(&uri, &token);
    suffix
        .headers_mut()
        .insert(header::RANGE, "bytes=4990-".parse()?);
    assert_eq!(&send(&app, suffix).await.body[..], &data[4990..]);

    let mut beyond = get_with(&uri, &token);
    beyond
        .headers_mut()
        .insert(header::RANGE, "bytes=5000-".parse()?);
    let beyond = send(&app, beyond).await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers[header::CONTENT_RANGE], "bytes */5000");

    let mut cached = get_with(&uri, &token);
    cached
        .headers_mut()
        .insert(header::IF_NONE_MATCH, format!("\"{d}\"").parse()?);
    assert_eq!(send(&app, cached).await.status, StatusCode::NOT_MODIFIED);
    Ok(())
}

#[tokio::test]
async fn upload_endpoints_need_the_upload_token_when_one_is_set() -> TestResult {
    let app = server(Settings::default(), Some("upload-secret-0123456789")).await;
    let d = Digest::of(b"x");
    let anonymous = send(&app, put_blob(b"x", &d)).await;
    assert_eq!(
        (anonymous.status, anonymous.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let mut wrong = put_blob(b"x", &d);
    wrong
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer upload-secret-999".parse()?);
    assert_eq!(send(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    for request in [
        Request::head(format!("/v1/blobs/{d}")).body(Body::empty())?,
        post_json("/v1/blobs/missing", &json!({"digests": []})),
        post_json("/v1/bundles", &json!({"entries": []})),
    ] {
        assert_eq!(send(&app, request).await.status, StatusCode::UNAUTHORIZED);
    }
    let mut right = put_blob(b"x", &d);
    right.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer upload-secret-0123456789".parse()?,
    );
    assert_eq!(send(&app, right).await.status, StatusCode::CREATED);
    Ok(())
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() -> TestResult {
    let app = server(Settings::default(), None).await;
    let get = |uri: &str| Request::get(uri).body(Body::empty());
    assert_eq!(send(&app, get("/healthz")?).await.status, StatusCode::OK);
    assert_eq!(send(&app, get("/readyz")?).await.status, StatusCode::OK);
    stored(&app, b"counted").await;
    let nowhere = send(&app, get("/v2/nothing")?).await;
    assert_eq!(
        (nowhere.status, nowhere.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let wrong_method = send(&app, get("/v1/blobs/missing")?).await;
    assert_eq!(
        (wrong_method.status, wrong_method.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let metrics = send(&app, get("/metrics")?).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"sparkstage_http_requests_total{method="PUT",route="/v1/blobs/{digest}",status="201"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        text.contains("sparkstage_blob_bytes_received_total 7"),
        "{text}"
    );
    assert!(
        text.contains("sparkstage_blob_upload_duration_seconds_count 1"),
        "{text}"
    );
    assert!(!text.contains("sha256:"), "no digests in labels");
    Ok(())
}

#[tokio::test]
async fn operators_list_bundles_and_delete_them_with_the_upload_token() -> TestResult {
    const UPLOAD: &str = "upload-secret-0123456789";
    let app = server(Settings::default(), Some(UPLOAD)).await;
    let with_upload = |mut r: Request<Body>| {
        r.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {UPLOAD}").parse().expect("header"),
        );
        r
    };
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for data in [b"one".as_slice(), b"three"] {
        let d = Digest::of(data);
        assert!(
            send(&app, with_upload(put_blob(data, &d)))
                .await
                .status
                .is_success()
        );
        let entries = json!([{"name": "a.jar", "digest": d, "size": data.len(), "kind": "jar"}]);
        let answer = send(
            &app,
            with_upload(post_json("/v1/bundles", &json!({ "entries": entries }))),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        ids.push(answer.json()["id"].as_str().unwrap_or_default().to_owned());
        tokens.push(
            answer.json()["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let anonymous = send(&app, Request::get("/v1/bundles").body(Body::empty())?).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A bundle token is not an operator's token.
    let answer = send(&app, get_with("/v1/bundles", &tokens[0])).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(&app, get_with("/v1/bundles", UPLOAD)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let listed = answer.json();
    let listed: Vec<(&str, u64, u64)> = listed["bundles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    (
                        b["id"].as_str().unwrap_or_default(),
                        b["entries"].as_u64().unwrap_or_default(),
                        b["size"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut expected = vec![(ids[0].as_str(), 1, 3), (ids[1].as_str(), 1, 5)];
    let mut got = listed.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert!(
        !answer
            .body
            .windows(10)
            .any(|w| w == &tokens[0].as_bytes()[..10])
    );

    let delete = |id: &str, token: &str| {
        Request::delete(format!("/v1/bundles/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    // The second bundle's token cannot delete the first; the upload token can.
    assert_eq!(
        send(&app, delete(&ids[0], &tokens[1])).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, delete(&ids[0], UPLOAD)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, delete(&ids[0], UPLOAD)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, delete(&ids[1], &tokens[1])).await.status,
        StatusCode::NO_CONTENT
    );
    let answer = send(&app, get_with("/v1/bundles", UPLOAD)).await;
    assert_eq!(answer.json()["bundles"], json!([]));
    Ok(())
}
