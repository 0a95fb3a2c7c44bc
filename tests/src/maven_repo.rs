//! A directory served over HTTP on loopback as a Maven repository manager serves it: files by
//! path, 404 for what is missing, every request logged (so tests can count what a resolution
//! asked for), an optional delay per request (a repository far from the cluster) and an optional
//! `Authorization` value every request must carry (401 otherwise, as Nexus and Artifactory
//! answer). Files carry an `ETag` (of their size and mtime) and a request whose `If-None-Match`
//! names it is answered 304, as a repository manager or a CDN answers.

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
    /// Every answer: method, status, path.
    served: Served,
}

type Served = Arc<Mutex<Vec<(axum::http::Method, u16, String)>>>;

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
        let served: Served = Arc::default();
        let seen = Arc::clone(&log);
        let answered = Arc::clone(&served);
        let app = Router::new().route(
            "/{*path}",
            get(
                move |method: axum::http::Method,
                      UrlPath(path): UrlPath<String>,
                      headers: HeaderMap| {
                    let root = root.clone();
                    let seen = Arc::clone(&seen);
                    let answered = Arc::clone(&answered);
                    let required = authorization.clone();
                    async move {
                        let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
                        let response = match required {
                            Some(r) if given != Some(&*r) => {
                                if let Ok(mut l) = seen.lock() {
                                    l.push(format!("(refused) {path}"));
                                }
                                StatusCode::UNAUTHORIZED.into_response()
                            }
                            _ => answer(root, path.clone(), delay, &headers, seen).await,
                        };
                        if let Ok(mut a) = answered.lock() {
                            a.push((method, response.status().as_u16(), path));
                        }
                        response
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, log, served })
    }

    /// How many times a path ending in `suffix` was sent whole (GET answered 200).
    pub fn downloads(&self, suffix: &str) -> usize {
        self.answers(suffix)
            .iter()
            .filter(|(method, status)| *method == axum::http::Method::GET && *status == 200)
            .count()
    }

    /// How many GETs asked for a path ending in `suffix`, whatever their answer.
    pub fn gets(&self, suffix: &str) -> usize {
        self.answers(suffix)
            .iter()
            .filter(|(method, _)| *method == axum::http::Method::GET)
            .count()
    }

    /// Method and status of every answer for a path ending in `suffix`, in order.
    pub fn answers(&self, suffix: &str) -> Vec<(axum::http::Method, u16)> {
        self.served
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|(_, _, p)| p.ends_with(suffix))
                    .map(|(m, s, _)| (m.clone(), *s))
                    .collect()
            })
            .unwrap_or_default()
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
    headers: &HeaderMap,
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
    let Ok(file) = tokio::fs::File::open(root.join(&path)).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(meta) = file.metadata().await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !meta.is_file() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{mtime:x}\"", meta.len());
    let matches = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(axum::http::header::ETAG, etag)]).into_response();
    }
    // The length, as real origins (nginx, object stores) send it: a body cut short shows.
    (
        [
            (axum::http::header::ETAG, etag),
            (axum::http::header::CONTENT_LENGTH, meta.len().to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}
