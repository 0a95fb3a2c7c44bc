//! A Kubernetes API server double on loopback that answers with traffic recorded from a real
//! kube-apiserver (`tests/fixtures/k8s/`, copied from `../shared/fixtures/k8s/`), for `kube`'s
//! real client: pod lists, a pods' watch stream whose recorded lines the test releases one by
//! one, a missing namespace, and a recorded refusal to switch on when the test breaks the API.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use tokio::sync::mpsc;

/// The directory of the recorded API traffic.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s/api")
}

/// A recorded JSON file of `tests/fixtures/k8s/`, by its path there (such as
/// `admission/kubectl-run.review.json`).
pub fn recorded_json(path: &str) -> Result<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/k8s")
        .join(path);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// A recorded file's text.
pub fn fixture(name: &str) -> Result<String> {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// A recorded answer: its status (from the `.http` transcript) and its body.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: StatusCode,
    pub body: String,
}

impl Recorded {
    /// The answer recorded as `NN-name`: `NN-name.http`'s status line and
    /// `NN-name.response.json`.
    pub fn load(stem: &str) -> Result<Self> {
        let transcript = fixture(&format!("{stem}.http"))?;
        let status = transcript
            .lines()
            .find_map(|l| l.strip_prefix("< HTTP/1.1 "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|code| code.parse::<u16>().ok())
            .context("no status line in the transcript")?;
        Ok(Self {
            status: StatusCode::from_u16(status)?,
            body: fixture(&format!("{stem}.response.json"))?,
        })
    }

    fn answer(&self) -> Response {
        (
            self.status,
            [("content-type", "application/json")],
            self.body.clone(),
        )
            .into_response()
    }
}

struct Double {
    list: Recorded,
    /// Answered to pod lists and watches instead, while set.
    broken: Option<Recorded>,
    /// The lines the next watch streams.
    watch: Option<mpsc::UnboundedReceiver<String>>,
    /// Namespaces answered with the recorded 404.
    missing_namespaces: HashSet<String>,
    /// Lists wait while this is set.
    hold_lists: bool,
    /// TokenReview answers by the token asked about; any other token gets the recorded invalid
    /// signature.
    reviews: std::collections::HashMap<String, Recorded>,
    /// TokenReviews asked, and the audiences of the last one.
    review_count: usize,
    review_audiences: Option<Vec<String>>,
    /// The writes taken, in order.
    writes: Vec<Write>,
}

/// A write the double took.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: String,
    /// The path and the query.
    pub uri: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

fn record_write(
    state: &Shared,
    method: &str,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(state).writes.push(Write {
        method: method.to_owned(),
        uri: uri.to_string(),
        content_type,
        body: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
    });
}

fn recorded_answer(stem: &str) -> Response {
    match Recorded::load(stem) {
        Ok(r) => r.answer(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST .../secrets`: the recorded creation.
async fn create_secret(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    record_write(&state, "POST", &uri, &headers, &body);
    recorded_answer("01-secret-create")
}

/// `PATCH` of any object: a merge patch of a Secret gets the recorded ownerReferences patch; a
/// server-side apply (`application/apply-patch+yaml`, which `kube` sends as JSON) gets the
/// object back as the API server would store it: the namespace of the path and a uid added
/// (nothing of server-side apply was recorded); anything else 415.
async fn patch(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    record_write(&state, "PATCH", &uri, &headers, &body);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path = uri.path();
    match content_type {
        "application/merge-patch+json" if path.contains("/secrets/") => {
            recorded_answer("07-secret-immutable-patch-ownerreferences")
        }
        "application/apply-patch+yaml" => {
            let Ok(mut object) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "not JSON").into_response();
            };
            let parts: Vec<&str> = path.split('/').collect();
            if let Some(i) = parts.iter().position(|p| *p == "namespaces") {
                object["metadata"]["namespace"] = parts[i + 1].into();
            }
            object["metadata"]["uid"] = applied_uid(path).into();
            (StatusCode::OK, axum::Json(object)).into_response()
        }
        _ => StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response(),
    }
}

/// The uid the double gives the object it applied at `path`.
pub fn applied_uid(path: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(path.as_bytes());
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `GET /api/v1`: the core group's resources, from `k8s_openapi`'s types.
async fn core_discovery() -> Response {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};
    fn resource<K: k8s_openapi::Resource>() -> APIResource
    where
        K::Scope: 'static,
    {
        APIResource {
            name: K::URL_PATH_SEGMENT.to_owned(),
            kind: K::KIND.to_owned(),
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            singular_name: K::KIND.to_lowercase(),
            verbs: [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
            .map(str::to_owned)
            .to_vec(),
            ..APIResource::default()
        }
    }
    axum::Json(APIResourceList {
        group_version: "v1".to_owned(),
        resources: vec![
            resource::<ConfigMap>(),
            resource::<Pod>(),
            resource::<Secret>(),
            resource::<Service>(),
            resource::<ServiceAccount>(),
        ],
    })
    .into_response()
}

/// The running double.
pub struct KubeDouble {
    pub url: String,
    state: Arc<Mutex<Double>>,
    _server: tokio::task::JoinHandle<()>,
}

type Shared = Arc<Mutex<Double>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Double> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn pods(State(state): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let watching = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    while !watching && lock(&state).hold_lists {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut s = lock(&state);
    if let Some(broken) = &s.broken {
        return broken.answer();
    }
    if !watching {
        return s.list.answer();
    }
    // A watch: the released lines, open until the test drops their sender (as the API server
    // ends a watch at its timeout); without lines to give, held open with nothing.
    let lines = s.watch.take();
    let stream = match lines {
        Some(rx) => tokio_stream_of(rx)
            .map(|line| Ok::<_, Infallible>(Bytes::from(format!("{line}\n"))))
            .boxed(),
        None => futures::stream::pending().boxed(),
    };
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn tokio_stream_of(
    mut rx: mpsc::UnboundedReceiver<String>,
) -> impl futures::Stream<Item = String> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn namespace(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    if lock(&state).missing_namespaces.contains(&name) {
        return match Recorded::load("11-namespace-get-missing") {
            Ok(r) => r.answer(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
    }
    // Nothing recorded for a namespace that exists: an answer the client cannot read.
    StatusCode::NOT_IMPLEMENTED.into_response()
}

async fn token_review(State(state): State<Shared>, body: Bytes) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let token = request["spec"]["token"].as_str().unwrap_or_default();
    let audiences = request["spec"]["audiences"].as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let mut s = lock(&state);
    s.review_count += 1;
    s.review_audiences = audiences;
    let answer = match s.reviews.get(token) {
        Some(recorded) => Ok(recorded.clone()),
        None => Recorded::load("18-tokenreview-invalid-signature"),
    };
    match answer {
        Ok(r) => r.answer(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

impl KubeDouble {
    /// Serves `list` (a recorded pod list, such as `15-pods-list-before-watch`) to pod lists.
    pub async fn start(list: &str) -> Result<Self> {
        let state: Shared = Arc::new(Mutex::new(Double {
            list: Recorded::load(list)?,
            broken: None,
            watch: None,
            missing_namespaces: HashSet::new(),
            hold_lists: false,
            reviews: std::collections::HashMap::new(),
            review_count: 0,
            review_audiences: None,
            writes: Vec::new(),
        }));
        let app = Router::new()
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/namespaces/{name}", get(namespace))
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route("/api/v1", get(core_discovery))
            .route("/api/v1/namespaces/{ns}/secrets", post(create_secret))
            .route(
                "/api/v1/namespaces/{ns}/{plural}/{name}",
                axum::routing::patch(patch),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
                axum::routing::patch(patch),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            state,
            _server: server,
        })
    }

    /// A client of `kube` for this double.
    pub fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(kube::Config::new(
            self.url.parse()?,
        ))?)
    }

    /// A TokenReview of `token` is answered with the review recorded as `stem` (such as
    /// `22-tokenreview-pod-bound`).
    pub fn review_token(&self, token: &str, stem: &str) -> Result<()> {
        let recorded = Recorded::load(stem)?;
        lock(&self.state).reviews.insert(token.to_owned(), recorded);
        Ok(())
    }

    /// How many TokenReviews were asked, and the audiences the last one asked for.
    pub fn token_reviews(&self) -> (usize, Option<Vec<String>>) {
        let s = lock(&self.state);
        (s.review_count, s.review_audiences.clone())
    }

    /// A kubeconfig file in `dir` that points at this double (for a server process).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\n\
             users:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: double\n  context:\n    \
             cluster: double\n    user: nobody\n    namespace: fixtures\ncurrent-context: double\n",
            self.url
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The writes taken so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.state).writes.clone()
    }

    /// Pod lists wait until [`KubeDouble::open_lists`].
    pub fn hold_lists(&self) {
        lock(&self.state).hold_lists = true;
    }

    pub fn open_lists(&self) {
        lock(&self.state).hold_lists = false;
    }

    /// The next watch streams what is sent here, line by line.
    pub fn next_watch(&self) -> mpsc::UnboundedSender<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.state).watch = Some(rx);
        tx
    }

    /// Pod lists and watches get `answer` (a recorded error) until [`KubeDouble::mend`].
    pub fn break_with(&self, answer: Recorded) {
        lock(&self.state).broken = Some(answer);
    }

    pub fn mend(&self) {
        lock(&self.state).broken = None;
    }

    /// `name` answers the recorded 404 of a missing namespace.
    pub fn namespace_missing(&self, name: &str) {
        lock(&self.state).missing_namespaces.insert(name.to_owned());
    }
}

/// The lines of the recorded pods' watch (`16-pods-watch.ndjson`): ADDED, three MODIFIED (the
/// last sets `deletionTimestamp`), DELETED, BOOKMARK.
pub fn recorded_watch() -> Result<Vec<String>> {
    Ok(fixture("16-pods-watch.ndjson")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}
