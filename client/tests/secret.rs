//! The token Secret through the Kubernetes API: created, found again, refused, and given to the
//! driver pod.
//!
//! No Kubernetes API server can run on these machines, so a double on loopback answers with the
//! traffic recorded from a real kube-apiserver (`tests/fixtures/k8s/api/`: `01` a created Secret,
//! `02` 409 `AlreadyExists`, `03` the stored Secret, `10` 403 `Forbidden`, `13`/`14` pod lists,
//! `07` the ownerReferences patch). `kube`'s real client talks to it, and the requests it sends
//! are compared with the recorded ones.

use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use sparkstage::secret::{create, secret, secret_name};
use sparkstage_tests::kube_double::{Recorded, fixture};
use sparkstage_tests::server::Server;

/// What the double saw: (method, path and query, content type, body).
type Seen = Arc<Mutex<Vec<(Method, String, String, Value)>>>;

/// Which recorded answer each request gets.
#[derive(Clone, Copy)]
struct Script {
    /// `POST .../secrets`.
    create: &'static str,
    /// `GET .../secrets/{name}`.
    get: &'static str,
    /// Pod lists answer the empty list this many times, then the two recorded drivers.
    empties: usize,
}

impl Script {
    fn created() -> Self {
        Self {
            create: "01-secret-create",
            get: "04-secret-get-missing",
            empties: usize::MAX,
        }
    }

    fn exists() -> Self {
        Self {
            create: "02-secret-create-again",
            get: "03-secret-get",
            ..Self::created()
        }
    }

    fn forbidden() -> Self {
        Self {
            create: "10-secret-create-forbidden",
            ..Self::created()
        }
    }

    fn drivers_after(empties: usize) -> Self {
        Self {
            empties,
            ..Self::created()
        }
    }
}

fn answer(recorded: &Recorded) -> Response {
    (
        recorded.status,
        [("content-type", "application/json")],
        recorded.body.clone(),
    )
        .into_response()
}

/// Serves the recorded answers `script` names; returns the double's URL and what it saw.
async fn recorded_api(script: Script) -> Result<(String, Seen)> {
    let create = Recorded::load(script.create)?;
    let found = Recorded::load(script.get)?;
    let none = Recorded::load("14-pods-list-none")?;
    let drivers = Recorded::load("13-pods-list-driver")?;
    let patched = Recorded::load("07-secret-immutable-patch-ownerreferences")?;
    let seen: Seen = Arc::default();
    let lists = Arc::new(Mutex::new(0usize));
    let record = |seen: &Seen, method: Method, path: String, headers: &HeaderMap, body: &[u8]| {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Ok(mut s) = seen.lock() {
            s.push((method, path, content_type, body));
        }
    };
    let app = Router::new()
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            axum::routing::post({
                let seen = Arc::clone(&seen);
                move |Path(ns): Path<String>, headers: HeaderMap, body: Bytes| async move {
                    let path = format!("/api/v1/namespaces/{ns}/secrets");
                    record(&seen, Method::POST, path, &headers, &body);
                    answer(&create)
                }
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get({
                let seen = Arc::clone(&seen);
                move |Path((ns, name)): Path<(String, String)>, headers: HeaderMap| async move {
                    let path = format!("/api/v1/namespaces/{ns}/secrets/{name}");
                    record(&seen, Method::GET, path, &headers, b"");
                    answer(&found)
                }
            })
            .patch({
                let seen = Arc::clone(&seen);
                move |Path((ns, name)): Path<(String, String)>,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    let path = format!("/api/v1/namespaces/{ns}/secrets/{name}");
                    record(&seen, Method::PATCH, path, &headers, &body);
                    answer(&patched)
                }
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get({
                let seen = Arc::clone(&seen);
                move |Path(ns): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap| async move {
                    let path = format!("/api/v1/namespaces/{ns}/pods?{}", q.unwrap_or_default());
                    record(&seen, Method::GET, path, &headers, b"");
                    let n = lists.lock().map(|mut n| {
                        *n += 1;
                        *n
                    });
                    if n.unwrap_or_default() <= script.empties {
                        answer(&none)
                    } else {
                        answer(&drivers)
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

fn client(url: &str) -> Result<kube::Client> {
    let config = kube::Config::new(url.parse()?);
    Ok(kube::Client::try_from(config)?)
}

/// The bundle and the token of the recorded Secret (`REDACTED`: the recording's token).
const BUNDLE: &str = "0123456789abcdef0123456789abcdef";
const RECORDED_TOKEN: &str = "REDACTED";
/// Another token, which must never be printed.
const TOKEN: &str = "bundle-token-that-only-the-secret-holds";

#[tokio::test]
async fn the_secret_is_created_as_recorded() -> Result<()> {
    let (url, seen) = recorded_api(Script::created()).await?;
    create(client(&url)?, &secret("fixtures", BUNDLE, RECORDED_TOKEN)).await?;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(seen.len() == 1, "{seen:?}");
    let (method, path, content_type, body) = &seen[0];
    ensure!(*method == Method::POST && path == "/api/v1/namespaces/fixtures/secrets");
    ensure!(content_type == "application/json", "{content_type}");
    // What the real API server accepted, field for field: name, labels, immutable, base64 data.
    let recorded: Value = serde_json::from_str(&fixture("01-secret-create.request.json")?)?;
    ensure!(*body == recorded, "{body} != {recorded}");
    Ok(())
}

#[tokio::test]
async fn an_existing_secret_with_the_same_token_is_accepted_another_is_an_error() -> Result<()> {
    let (url, seen) = recorded_api(Script::exists()).await?;
    create(client(&url)?, &secret("fixtures", BUNDLE, RECORDED_TOKEN)).await?;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(
        seen.iter()
            .map(|(m, p, ..)| (m.clone(), p.as_str()))
            .collect::<Vec<_>>()
            == [
                (Method::POST, "/api/v1/namespaces/fixtures/secrets"),
                (
                    Method::GET,
                    "/api/v1/namespaces/fixtures/secrets/sparkstage-0123456789abcdef0123456789abcdef"
                )
            ],
        "{seen:?}"
    );
    let e = create(client(&url)?, &secret("fixtures", BUNDLE, TOKEN))
        .await
        .expect_err("a different token");
    ensure!(e.to_string().contains("exists with another token"), "{e}");
    ensure!(!format!("{e:#}").contains(TOKEN), "the token leaked: {e:#}");
    Ok(())
}

#[tokio::test]
async fn a_forbidden_answer_names_the_namespace_and_the_reason() -> Result<()> {
    let (url, _) = recorded_api(Script::forbidden()).await?;
    let e = create(client(&url)?, &secret("fixtures", BUNDLE, TOKEN))
        .await
        .expect_err("forbidden");
    let message = format!("{e:#}");
    ensure!(
        message.contains(&format!("fixtures/{}", secret_name(BUNDLE)))
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
    let (url, seen) = recorded_api(Script::created()).await?;
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
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(
        seen.iter()
            .any(|(m, p, ..)| *m == Method::POST && p == "/api/v1/namespaces/analytics/secrets"),
        "{seen:?}"
    );
    // No driver pod appears (spark-submit --version creates none): the Secret is said to stay.
    ensure!(
        stderr.contains("has no owner and stays"),
        "no word about the Secret's owner: {stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn the_secret_goes_to_the_driver_pod_once_it_exists() -> Result<()> {
    use sparkstage::secret::{Adopted, adopt};
    use std::time::Duration;
    // Two lists find no driver yet; the third finds the recorded drivers.
    let (url, seen) = recorded_api(Script::drivers_after(2)).await?;
    let adopted = adopt(
        client(&url)?,
        "fixtures",
        BUNDLE,
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
    let (url, seen) = recorded_api(Script::drivers_after(usize::MAX)).await?;
    let adopted = adopt(
        client(&url)?,
        "fixtures",
        BUNDLE,
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
