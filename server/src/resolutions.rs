//! Maven resolutions for `POST /v1/resolve`: one resolution per distinct request at a time
//! (identical concurrent requests wait for the same one), answers kept for a while, and every
//! resolved jar stored as a blob so that bundles can name it without an upload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sparkstage_api::resolve::{ResolveRequest, ResolveResponse, ResolvedArtifact};
use sparkstage_maven::coords::{Coordinate, Exclusion};
use sparkstage_maven::resolver::{Artifact, DEFAULT_CONCURRENCY, Mode, Resolver};
use tokio::sync::OnceCell;

use crate::blob_store::{BlobStore, BodyError};
use crate::error::ApiError;

/// How the server resolves: its repositories (asked before a request's own), its local cache of
/// POMs and jars, whether it may go to the network, how long answers are kept.
#[derive(Debug, Clone)]
pub struct MavenSettings {
    pub repositories: Vec<String>,
    pub cache: PathBuf,
    pub offline: bool,
    pub answer_ttl: Duration,
}

impl Default for MavenSettings {
    fn default() -> Self {
        Self {
            repositories: vec![sparkstage_maven::resolver::MAVEN_CENTRAL.to_owned()],
            cache: std::env::temp_dir().join("sparkstage-maven"),
            offline: false,
            answer_ttl: Duration::from_secs(600),
        }
    }
}

type Outcome = Result<(Instant, Arc<ResolveResponse>), Arc<ApiError>>;

/// What happened to a request, for the `sparkstage_resolutions` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// This request ran the resolution.
    Resolved,
    /// An identical request was resolving; this one waited for its answer.
    Shared,
    /// A kept answer.
    Cached,
    Failed,
}

impl Served {
    pub fn label(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Shared => "shared",
            Self::Cached => "cached",
            Self::Failed => "failed",
        }
    }
}

pub struct Resolutions {
    settings: MavenSettings,
    answers: Mutex<HashMap<ResolveRequest, Arc<OnceCell<Outcome>>>>,
}

/// A parsed request.
struct Parsed {
    coordinates: Vec<Coordinate>,
    exclusions: Vec<Exclusion>,
    mode: Mode,
}

fn parse(request: &ResolveRequest) -> Result<Parsed, ApiError> {
    if request.coordinates.is_empty() {
        return Err(ApiError::bad_request(
            "no_coordinates",
            "the request names no coordinates; give at least one group:artifact:version",
        ));
    }
    let coordinates = request
        .coordinates
        .iter()
        .map(|c| c.parse::<Coordinate>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("bad_coordinate", e.to_string()))?;
    let exclusions = request
        .exclusions
        .iter()
        .map(|e| e.parse::<Exclusion>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("bad_exclusion", e.to_string()))?;
    for r in &request.repositories {
        // A request may only add network repositories: file:// would read the server's disk.
        let ok = url::Url::parse(r).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ApiError::bad_request(
                "bad_repository",
                format!(
                    "{}: a request's repositories must be http:// or https:// URLs",
                    redact(r)
                ),
            ));
        }
    }
    let mode = match request.mode.as_deref() {
        None => Mode::Spark,
        Some(m) => m
            .parse()
            .map_err(|e: String| ApiError::bad_request("bad_mode", e))?,
    };
    Ok(Parsed {
        coordinates,
        exclusions,
        mode,
    })
}

/// A repository URL without credentials, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

impl Resolutions {
    pub fn new(settings: MavenSettings) -> Self {
        Self {
            settings,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `request`: kept, shared with an identical request in flight, or resolved
    /// now (storing the jars in `blobs`).
    pub async fn resolve(
        &self,
        request: ResolveRequest,
        blobs: &BlobStore,
        max_blob_size: u64,
    ) -> (Served, Result<Arc<ResolveResponse>, ApiError>) {
        let parsed = match parse(&request) {
            Ok(p) => p,
            Err(e) => return (Served::Failed, Err(e)),
        };
        loop {
            let cell = {
                let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
                Arc::clone(answers.entry(request.clone()).or_default())
            };
            let was_ready = cell.initialized();
            let mut ran = false;
            let outcome = cell
                .get_or_init(|| {
                    ran = true;
                    self.run(&request, &parsed, blobs, max_blob_size)
                })
                .await
                .clone();
            let stale = match &outcome {
                Ok((at, _)) => at.elapsed() > self.settings.answer_ttl,
                Err(_) => true,
            };
            if stale {
                // Failures are not kept, and expired answers are dropped: the next request
                // resolves again.
                let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
                if answers.get(&request).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                    answers.remove(&request);
                }
            }
            match outcome {
                Ok((_, answer)) if ran => return (Served::Resolved, Ok(answer)),
                Ok((at, _)) if at.elapsed() > self.settings.answer_ttl => continue,
                Ok((_, answer)) if was_ready => return (Served::Cached, Ok(answer)),
                Ok((_, answer)) => return (Served::Shared, Ok(answer)),
                Err(e) => return (Served::Failed, Err(rebuild(&e))),
            }
        }
    }

    async fn run(
        &self,
        request: &ResolveRequest,
        parsed: &Parsed,
        blobs: &BlobStore,
        max_blob_size: u64,
    ) -> Outcome {
        let started = Instant::now();
        let result = self
            .resolve_and_store(request, parsed, blobs, max_blob_size)
            .await;
        match &result {
            Ok(r) => tracing::info!(
                coordinates = %request.coordinates.join(","),
                mode = %parsed.mode,
                jars = r.artifacts.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "resolved"
            ),
            Err(e) => tracing::warn!(
                coordinates = %request.coordinates.join(","),
                error = %e,
                "resolution failed"
            ),
        }
        result
            .map(|r| (Instant::now(), Arc::new(r)))
            .map_err(Arc::new)
    }

    async fn resolve_and_store(
        &self,
        request: &ResolveRequest,
        parsed: &Parsed,
        blobs: &BlobStore,
        max_blob_size: u64,
    ) -> Result<ResolveResponse, ApiError> {
        let mut repositories = self.settings.repositories.clone();
        for r in &request.repositories {
            if !repositories.contains(r) {
                repositories.push(r.clone());
            }
        }
        let resolver = Resolver::new(
            &repositories,
            &self.settings.cache,
            self.settings.offline,
            DEFAULT_CONCURRENCY,
        )
        .map_err(|e| ApiError::bad_request("bad_repository", e.to_string()))?;
        let resolution = resolver
            .resolve(&parsed.coordinates, &parsed.exclusions, parsed.mode)
            .await
            .map_err(|e| match e {
                sparkstage_maven::resolve::ResolveError::Source { .. } => {
                    ApiError::Upstream(e.to_string())
                }
                other => ApiError::Unresolved(other.to_string()),
            })?;
        let stored = futures::stream::iter(
            resolution
                .artifacts
                .into_iter()
                .map(|a| store(blobs, a, max_blob_size)),
        )
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
        Ok(ResolveResponse {
            mode: parsed.mode.to_string(),
            artifacts: stored.into_iter().collect::<Result<_, _>>()?,
            skipped: resolution.skipped.iter().map(ToString::to_string).collect(),
        })
    }
}

/// A shared failure, answered to every request that waited for it.
fn rebuild(e: &ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { code, message } => ApiError::bad_request(code, message.clone()),
        ApiError::Unresolved(m) => ApiError::Unresolved(m.clone()),
        ApiError::Upstream(m) => ApiError::Upstream(m.clone()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Streams a resolved jar from the local cache into the blob store (verified again there).
async fn store(
    blobs: &BlobStore,
    artifact: Artifact,
    max_blob_size: u64,
) -> Result<ResolvedArtifact, ApiError> {
    let digest = artifact.digest;
    if blobs.size(&digest).await?.is_none() {
        let file = tokio::fs::File::open(&artifact.file)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", artifact.file.display())))?;
        let body = tokio_util::io::ReaderStream::new(file)
            .map(|chunk| chunk.map_err(|e| BodyError::Aborted(e.to_string())));
        blobs
            .put(&digest, Some(artifact.size), max_blob_size, body)
            .await?;
    }
    Ok(artifact.to_wire())
}
