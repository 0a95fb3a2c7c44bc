//! A directory served over HTTP on loopback as a Maven repository manager serves it: files by
//! path, 404 for what is missing, every request logged (so tests can count what a resolution
//! asked for), an optional delay per request (a repository far from the cluster) and an optional
//! `Authorization` value every request must carry (401 otherwise, as Nexus and Artifactory
//! answer).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A running repository server; it stops when the test's runtime ends.
pub struct MavenRepo {
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl MavenRepo {
    /// Serves `root`; each request waits `delay` before it is answered.
    pub async fn serve(root: impl Into<PathBuf>, delay: Duration) -> Result<Self> {
        Self::serve_with(root, delay, None).await
    }

    /// Serves `root` to requests whose `Authorization` header is `authorization` only.
    pub async fn serve_authorized(root: impl Into<PathBuf>, authorization: &str) -> Result<Self> {
        Self::serve_with(root, Duration::ZERO, Some(authorization.into())).await
    }

    async fn serve_with(
        root: impl Into<PathBuf>,
        delay: Duration,
        authorization: Option<Arc<str>>,
    ) -> Result<Self> {
        let root: PathBuf = root.into();
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        let app = Router::new().route(
            "/{*path}",
            get(move |UrlPath(path): UrlPath<String>, headers: HeaderMap| {
                let root = root.clone();
                let seen = Arc::clone(&seen);
                let required = authorization.clone();
                async move {
                    let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
                    match required {
                        Some(r) if given != Some(&*r) => {
                            if let Ok(mut l) = seen.lock() {
                                l.push(format!("(refused) {path}"));
                            }
                            StatusCode::UNAUTHORIZED.into_response()
                        }
                        _ => answer(root, path, delay, seen).await,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, log })
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many requests asked for a path ending in `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.ends_with(suffix))
            .count()
    }
}

async fn answer(
    root: PathBuf,
    path: String,
    delay: Duration,
    seen: Arc<Mutex<Vec<String>>>,
) -> Response {
    if let Ok(mut l) = seen.lock() {
        l.push(path.clone());
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if path.split('/').any(|p| p == ".." || p.is_empty()) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match tokio::fs::File::open(root.join(&path)).await {
        Ok(file) if file.metadata().await.is_ok_and(|m| m.is_file()) => {
            Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
