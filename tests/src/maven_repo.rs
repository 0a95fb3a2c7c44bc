//! A directory served over HTTP on loopback as a Maven repository manager serves it: files by
//! path, 404 for what is missing, every request logged (so tests can count what a resolution
//! asked for) and an optional delay per request (a repository far from the cluster).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
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
        let root: PathBuf = root.into();
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        let app = Router::new().route(
            "/{*path}",
            get(move |UrlPath(path): UrlPath<String>| {
                let root = root.clone();
                let seen = Arc::clone(&seen);
                async move { answer(root, path, delay, seen).await }
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
