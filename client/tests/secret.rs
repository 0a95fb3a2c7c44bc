//! Creating the token Secret through the Kubernetes API.
//!
//! No Kubernetes API server can run on these machines, so the test serves the API's answers over
//! HTTP on loopback: the bodies below follow the Kubernetes API (a created `Secret` echoed with
//! the server-set metadata; `Status` objects with `reason` `AlreadyExists` (409) and `Forbidden`
//! (403) as an API server sends them for these requests). `kube`'s real client talks to it: the
//! requests it sends (method, path, JSON body) are checked as a real API server would see them.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sparkstage::secret::{create, secret, secret_name};
use sparkstage_tests::server::Server;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Exists,
    Forbidden,
}

#[derive(Clone)]
struct Api {
    mode: Mode,
    /// The Secret the "cluster" holds (for `Exists`), and every request seen.
    stored: Arc<Mutex<Option<Value>>>,
    seen: Arc<Mutex<Vec<(Method, String, Value)>>>,
}

fn status(code: u16, reason: &str, message: &str, name: Option<&str>) -> Response {
    let mut details = json!({"kind": "secrets"});
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn post_secret(State(api): State<Api>, Path(ns): Path<String>, body: Bytes) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    api.seen
        .lock()
        .map(|mut s| {
            s.push((
                Method::POST,
                format!("/api/v1/namespaces/{ns}/secrets"),
                value.clone(),
            ))
        })
        .ok();
    match api.mode {
        Mode::Forbidden => status(
            403,
            "Forbidden",
            &format!(
                "secrets is forbidden: User \"system:serviceaccount:{ns}:spark-submitter\" cannot create resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
            ),
            None,
        ),
        Mode::Exists => status(
            409,
            "AlreadyExists",
            &format!("secrets \"{name}\" already exists"),
            Some(&name),
        ),
        Mode::Create => {
            let mut created = value.clone();
            created["metadata"]["uid"] = json!("8d1f0c7e-4a5b-4c3d-9e2f-1a2b3c4d5e6f");
            created["metadata"]["resourceVersion"] = json!("48213");
            created["metadata"]["creationTimestamp"] = json!("2026-11-22T15:00:00Z");
            api.stored
                .lock()
                .map(|mut s| *s = Some(created.clone()))
                .ok();
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                created.to_string(),
            )
                .into_response()
        }
    }
}

async fn get_secret(State(api): State<Api>, Path((ns, name)): Path<(String, String)>) -> Response {
    api.seen
        .lock()
        .map(|mut s| {
            s.push((
                Method::GET,
                format!("/api/v1/namespaces/{ns}/secrets/{name}"),
                Value::Null,
            ))
        })
        .ok();
    match api.stored.lock().ok().and_then(|s| s.clone()) {
        Some(secret) => {
            ([("content-type", "application/json")], secret.to_string()).into_response()
        }
        None => status(
            404,
            "NotFound",
            &format!("secrets \"{name}\" not found"),
            Some(&name),
        ),
    }
}

/// Serves the API; returns its URL and state.
async fn serve(mode: Mode, stored: Option<Value>) -> Result<(String, Api)> {
    let api = Api {
        mode,
        stored: Arc::new(Mutex::new(stored)),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/secrets", post(post_secret))
        .route("/api/v1/namespaces/{ns}/secrets/{name}", get(get_secret))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, api))
}

fn client(url: &str) -> Result<kube::Client> {
    let config = kube::Config::new(url.parse()?);
    Ok(kube::Client::try_from(config)?)
}

const BUNDLE: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "bundle-token-that-only-the-secret-holds";

#[tokio::test]
async fn the_secret_is_created_with_the_token_and_labels() -> Result<()> {
    let (url, api) = serve(Mode::Create, None).await?;
    create(client(&url)?, &secret("analytics", BUNDLE, TOKEN)).await?;
    let seen = api.seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(seen.len() == 1, "{seen:?}");
    let (method, path, body) = &seen[0];
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/api/v1/namespaces/analytics/secrets");
    assert_eq!(body["kind"], "Secret");
    assert_eq!(body["metadata"]["name"], json!(secret_name(BUNDLE)));
    assert_eq!(body["metadata"]["labels"]["sparkstage.io/bundle"], BUNDLE);
    assert_eq!(body["immutable"], true);
    // `data` is base64, as the API wants it.
    use base64::Engine as _;
    let encoded = body["data"]["token"].as_str().context("token")?;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(encoded)?,
        TOKEN.as_bytes()
    );
    Ok(())
}

#[tokio::test]
async fn an_existing_secret_with_the_same_token_is_accepted_another_is_an_error() -> Result<()> {
    let ours = serde_json::to_value(secret("analytics", BUNDLE, TOKEN))?;
    let (url, _) = serve(Mode::Exists, Some(ours)).await?;
    create(client(&url)?, &secret("analytics", BUNDLE, TOKEN)).await?;

    let theirs = serde_json::to_value(secret("analytics", BUNDLE, "another-token"))?;
    let (url, _) = serve(Mode::Exists, Some(theirs)).await?;
    let e = create(client(&url)?, &secret("analytics", BUNDLE, TOKEN))
        .await
        .expect_err("a different token");
    ensure!(e.to_string().contains("exists with another token"), "{e}");
    ensure!(!format!("{e:#}").contains(TOKEN), "the token leaked: {e:#}");
    Ok(())
}

#[tokio::test]
async fn a_forbidden_answer_names_the_namespace_and_the_reason() -> Result<()> {
    let (url, _) = serve(Mode::Forbidden, None).await?;
    let e = create(client(&url)?, &secret("analytics", BUNDLE, TOKEN))
        .await
        .expect_err("forbidden");
    let message = format!("{e:#}");
    ensure!(
        message.contains("analytics/sparkstage-")
            && message.contains("Forbidden")
            && message.contains("cannot create resource \"secrets\""),
        "{message}"
    );
    ensure!(!message.contains(TOKEN), "{message}");
    Ok(())
}

/// The binary without `--dry-run`: stages, creates the Secret through the kubeconfig's API
/// server, then runs the real spark-submit (`--version`, which needs no cluster) and exits with
/// its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_creates_the_secret_then_runs_spark_submit() -> Result<()> {
    let spark = sparkstage_tests::spark::spark_submit()?;
    let home = sparkstage_tests::spark::spark_home(&spark)?;
    let (url, api) = serve(Mode::Create, None).await?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("lookup.csv"), "a,b\n")?;
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n\
             users:\n- name: test\n  user:\n    token: kube-api-token\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: analytics\n\
             current-context: test\n"
        ),
    )?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
        .args([
            "submit",
            "--server",
            &server.url(),
            "--namespace",
            "analytics",
            "--",
        ])
        .arg(&spark)
        .args(["--version", "--files", "lookup.csv"])
        .current_dir(work.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("SPARK_HOME", &home)
        .env("SPARKSTAGE_DIGEST_CACHE", work.path().join("digests.json"))
        .env_remove("SPARKSTAGE_SERVER")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "{stderr}");
    ensure!(
        stderr.contains("version"),
        "spark-submit did not run: {stderr}"
    );
    let seen = api.seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(
        seen.iter()
            .any(|(m, p, _)| *m == Method::POST && p == "/api/v1/namespaces/analytics/secrets"),
        "{seen:?}"
    );
    Ok(())
}

/// What the recorded-traffic double saw: (method, path and query, content type, body).
type Seen = Arc<Mutex<Vec<(Method, String, String, Value)>>>;

/// Serves the recorded answers of a pod list (first `14-pods-list-none`, `empties` times, then
/// `13-pods-list-driver`) and of the ownerReferences patch (`07-...`).
async fn recorded_api(empties: usize) -> Result<(String, Seen)> {
    use axum::extract::RawQuery;
    use axum::http::HeaderMap;
    use axum::routing::patch;
    use sparkstage_tests::kube_double::Recorded;
    let none = Recorded::load("14-pods-list-none")?;
    let drivers = Recorded::load("13-pods-list-driver")?;
    let patched = Recorded::load("07-secret-immutable-patch-ownerreferences")?;
    let seen: Seen = Arc::default();
    let lists = Arc::new(Mutex::new(0usize));
    let answer = |r: &Recorded| {
        (
            r.status,
            [("content-type", "application/json")],
            r.body.clone(),
        )
            .into_response()
    };
    let app =
        Router::new()
            .route(
                "/api/v1/namespaces/{ns}/pods",
                get({
                    let seen = Arc::clone(&seen);
                    move |Path(ns): Path<String>, RawQuery(q): RawQuery| async move {
                        let path =
                            format!("/api/v1/namespaces/{ns}/pods?{}", q.unwrap_or_default());
                        if let Ok(mut s) = seen.lock() {
                            s.push((Method::GET, path, String::new(), Value::Null));
                        }
                        let n = lists.lock().map(|mut n| {
                            *n += 1;
                            *n
                        });
                        if n.unwrap_or_default() <= empties {
                            answer(&none)
                        } else {
                            answer(&drivers)
                        }
                    }
                }),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                patch({
                    let seen = Arc::clone(&seen);
                    move |Path((ns, name)): Path<(String, String)>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        let content_type = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if let Ok(mut s) = seen.lock() {
                            s.push((
                                Method::PATCH,
                                format!("/api/v1/namespaces/{ns}/secrets/{name}"),
                                content_type,
                                body,
                            ));
                        }
                        answer(&patched)
                    }
                }),
            );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

/// The bundle of the recorded Secret `sparkstage-0123...` in namespace `fixtures`.
const RECORDED_BUNDLE: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_secret_goes_to_the_driver_pod_once_it_exists() -> Result<()> {
    use sparkstage::secret::{Adopted, adopt};
    use std::time::Duration;
    // Two lists find no driver yet; the third finds the recorded drivers.
    let (url, seen) = recorded_api(2).await?;
    let adopted = adopt(
        client(&url)?,
        "fixtures",
        RECORDED_BUNDLE,
        Duration::from_secs(10),
        Duration::from_millis(50),
    )
    .await?;
    // Of the two recorded drivers, the older one.
    ensure!(
        adopted
            == Some(Adopted {
                pod: "fixture-app-821568a22cf14dfc-driver".into(),
                uid: "34021d66-6652-48da-b438-808846ef6ff1".into(),
            }),
        "{adopted:?}"
    );
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(seen.len() == 4, "{seen:?}");
    for (method, path, _, _) in &seen[..3] {
        ensure!(
            *method == Method::GET
                && path.contains(
                    "labelSelector=sparkstage.io%2Fbundle%3D0123456789abcdef0123456789abcdef%2Cspark-role%3Ddriver"
                ),
            "{path}"
        );
    }
    // The patch is the recorded one, byte for byte in JSON: only ownerReferences, as a merge
    // patch (which the API server accepted on the immutable Secret).
    let (method, path, content_type, body) = &seen[3];
    ensure!(*method == Method::PATCH, "{method}");
    ensure!(
        path == "/api/v1/namespaces/fixtures/secrets/sparkstage-0123456789abcdef0123456789abcdef",
        "{path}"
    );
    ensure!(
        content_type == "application/merge-patch+json",
        "{content_type}"
    );
    let recorded: Value = serde_json::from_str(&sparkstage_tests::kube_double::fixture(
        "07-secret-immutable-patch-ownerreferences.request.json",
    )?)?;
    ensure!(*body == recorded, "{body} != {recorded}");

    // No driver in time: none, and no patch.
    let (url, seen) = recorded_api(usize::MAX).await?;
    let adopted = adopt(
        client(&url)?,
        "fixtures",
        RECORDED_BUNDLE,
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .await?;
    ensure!(adopted.is_none());
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(
        seen.iter().all(|(m, ..)| *m == Method::GET) && seen.len() >= 3,
        "{seen:?}"
    );
    Ok(())
}
