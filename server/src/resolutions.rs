//! Maven resolutions for `POST /v1/resolve`: one resolution per distinct request at a time
//! (identical concurrent requests wait for the same one), answers kept for a while, and every
//! resolved jar stored as a blob so that bundles can name it without an upload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sparkstage_api::Digest;
use sparkstage_api::resolve::{ResolveRequest, ResolveResponse, ResolvedArtifact};
use sparkstage_maven::coords::{Coordinate, Exclusion};
use sparkstage_maven::credentials::{Credentials, is_under};
use sparkstage_maven::limits::Limits;
use sparkstage_maven::resolve::ResolveError;
use sparkstage_maven::resolver::{Artifact, DEFAULT_CONCURRENCY, Mode, Resolver};
use tokio::sync::OnceCell;

use crate::blob_store::{BlobStore, BodyError};
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::referrers::KeptResolution;

/// How the server resolves: its repositories (asked before a request's own), which repositories
/// a request may add, its local cache of POMs and jars, whether it may go to the network, how
/// long answers are kept.
#[derive(Debug, Clone)]
pub struct MavenSettings {
    pub repositories: Vec<String>,
    pub request_repositories: RequestRepositories,
    /// `Authorization` values by repository URL prefix (`--maven-credentials-file`).
    pub credentials: Credentials,
    pub cache: PathBuf,
    pub offline: bool,
    pub answer_ttl: Duration,
    /// What one resolution may cost, whatever a repository sends.
    pub limits: Limits,
}

/// Which repositories a request's `repositories` (`spark-submit --repositories`) may name. The
/// server fetches from them inside the cluster, so a shared cluster limits them to its mirrors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RequestRepositories {
    /// Any http(s) URL (the default: `--repositories` works as with spark-submit).
    #[default]
    Any,
    /// None: only the server's own repositories are asked.
    None,
    /// URLs under one of these ([`is_under`]: same scheme, host and port, and whole path
    /// segments, so `/maven` admits `/maven/releases`, not `/maven-evil`).
    Under(Vec<url::Url>),
}

impl std::str::FromStr for RequestRepositories {
    type Err = String;

    /// `any`, `none`, or comma-separated http(s) URL prefixes.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "any" => return Ok(Self::Any),
            "none" => return Ok(Self::None),
            _ => {}
        }
        let prefixes = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match url::Url::parse(p) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
                _ => Err(format!(
                    "{}: expected `any`, `none` or comma-separated http(s) URL prefixes",
                    sparkstage_api::shown::url_text(p)
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if prefixes.is_empty() {
            return Err("expected `any`, `none` or comma-separated http(s) URL prefixes".into());
        }
        Ok(Self::Under(prefixes))
    }
}

impl RequestRepositories {
    /// Whether a request may name `url` (an http(s) URL; its credentials are not compared).
    pub fn allows(&self, url: &url::Url) -> bool {
        match self {
            Self::Any => true,
            Self::None => false,
            Self::Under(prefixes) => prefixes.iter().any(|p| is_under(url, p)),
        }
    }
}

impl Default for MavenSettings {
    fn default() -> Self {
        Self {
            repositories: vec![sparkstage_maven::resolver::MAVEN_CENTRAL.to_owned()],
            request_repositories: RequestRepositories::Any,
            credentials: Credentials::default(),
            cache: std::env::temp_dir().join("sparkstage-maven"),
            offline: false,
            answer_ttl: Duration::from_secs(600),
            limits: Limits::default(),
        }
    }
}

/// The most of a resolution's error message an answer carries.
const MESSAGE_CHARS: usize = 4000;

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
    /// The cache the replicas share (`crate::maven_cache`), under the local `--maven-cache`.
    shared: Option<Arc<dyn sparkstage_maven::shared::SharedCache>>,
    answers: Mutex<HashMap<ResolveRequest, Arc<OnceCell<Outcome>>>>,
}

/// A parsed request.
struct Parsed {
    coordinates: Vec<Coordinate>,
    exclusions: Vec<Exclusion>,
    mode: Mode,
}

fn parse(request: &ResolveRequest, allowed: &RequestRepositories) -> Result<Parsed, ApiError> {
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
        let url = url::Url::parse(r)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_repository",
                    format!(
                        "{}: a request's repositories must be http:// or https:// URLs",
                        sparkstage_api::shown::url_text(r)
                    ),
                )
            })?;
        if !allowed.allows(&url) {
            let (r, what) = (
                sparkstage_api::shown::url_text(r),
                "this server's --maven-request-repositories",
            );
            return Err(ApiError::RepositoryNotAllowed(match allowed {
                RequestRepositories::None => format!(
                    "{r}: this server asks only its own Maven repositories ({what} is `none`); \
                     leave --repositories out or ask its operators for a mirror"
                ),
                _ => format!("{r}: not under any repository that {what} allows"),
            }));
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

impl Resolutions {
    pub fn new(
        settings: MavenSettings,
        shared: Option<Arc<dyn sparkstage_maven::shared::SharedCache>>,
    ) -> Self {
        Self {
            settings,
            shared,
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
        lifecycle: &Lifecycle,
    ) -> (Served, Result<Arc<ResolveResponse>, ApiError>) {
        let parsed = match parse(&request, &self.settings.request_repositories) {
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
                    self.run(&request, &parsed, blobs, max_blob_size, lifecycle)
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
        lifecycle: &Lifecycle,
    ) -> Outcome {
        let started = Instant::now();
        let result = self
            .resolve_and_store(request, parsed, blobs, max_blob_size, lifecycle)
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
        lifecycle: &Lifecycle,
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
        .map_err(|e| ApiError::bad_request("bad_repository", e.to_string()))?
        .with_credentials(&self.settings.credentials)
        .with_shared(self.shared.clone())
        .with_limits(self.settings.limits);
        let resolution = resolver
            .resolve(&parsed.coordinates, &parsed.exclusions, parsed.mode)
            .await
            .map_err(|e| {
                // The message names modules and repositories' answers: outside text.
                let message = sparkstage_api::shown::outside(&e.to_string(), MESSAGE_CHARS);
                match e {
                    ResolveError::Source { .. } | ResolveError::Deadline(_) => {
                        ApiError::Upstream(message)
                    }
                    ResolveError::Limit { .. } => ApiError::ResolutionLimit(message),
                    _ => ApiError::Unresolved(message),
                }
            })?;
        for warning in &resolution.warnings {
            tracing::warn!(%warning, "Maven resolution went on without a repository");
        }
        let stored = futures::stream::iter(
            resolution
                .artifacts
                .iter()
                .cloned()
                .map(|a| async move { store(blobs, &a, max_blob_size).await }),
        )
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
        let artifacts: Vec<ResolvedArtifact> = stored.into_iter().collect::<Result<_, _>>()?;
        self.keep(
            request,
            &resolution.artifacts,
            blobs,
            max_blob_size,
            lifecycle,
        )
        .await?;
        Ok(ResolveResponse {
            mode: parsed.mode.to_string(),
            artifacts,
            skipped: resolution.skipped.iter().map(ToString::to_string).collect(),
        })
    }

    /// Keeps the answer's jars from garbage collection while a client may still name them in a
    /// bundle: the record first, then the check (`crate::lifecycle::gc`); a jar that a
    /// collection took meanwhile is stored again.
    async fn keep(
        &self,
        request: &ResolveRequest,
        artifacts: &[Artifact],
        blobs: &BlobStore,
        max_blob_size: u64,
        lifecycle: &Lifecycle,
    ) -> Result<(), ApiError> {
        let path = KeptResolution::path(request);
        let hold = self.settings.answer_ttl + KEEP_AFTER_ANSWER;
        let wanted: HashMap<Digest, u64> = artifacts.iter().map(|a| (a.digest, a.size)).collect();
        for _ in 0..KEEP_ATTEMPTS {
            let kept = KeptResolution {
                expires_at: lifecycle.now() + chrono::Duration::from_std(hold).unwrap_or_default(),
                digests: wanted.keys().copied().collect(),
            };
            lifecycle.keep_resolution(&path, &kept).await?;
            let unclaimed = lifecycle.check(&wanted).await?;
            if unclaimed.is_empty() {
                return Ok(());
            }
            for artifact in artifacts
                .iter()
                .filter(|a| unclaimed.missing.contains(&a.digest))
            {
                lifecycle
                    .condemned()
                    .wait_until_free(&artifact.digest)
                    .await?;
                store(blobs, artifact, max_blob_size).await?;
            }
        }
        Err(ApiError::Internal(format!(
            "the resolved jars could not be kept from garbage collection in {KEEP_ATTEMPTS} attempts"
        )))
    }
}

/// A shared failure, answered to every request that waited for it.
fn rebuild(e: &ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { code, message } => ApiError::bad_request(code, message.clone()),
        ApiError::Unresolved(m) => ApiError::Unresolved(m.clone()),
        ApiError::ResolutionLimit(m) => ApiError::ResolutionLimit(m.clone()),
        ApiError::Upstream(m) => ApiError::Upstream(m.clone()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// How long after an answer stops being served its jars are still kept: the client uploads its
/// own files before it creates the bundle.
const KEEP_AFTER_ANSWER: Duration = Duration::from_secs(3600);
const KEEP_ATTEMPTS: usize = 3;

/// Streams a resolved jar from the local cache into the blob store (verified again there),
/// unless the store has it (a jar the shared cache keeps is a blob already).
async fn store(
    blobs: &BlobStore,
    artifact: &Artifact,
    max_blob_size: u64,
) -> Result<ResolvedArtifact, ApiError> {
    let digest = artifact.digest;
    if blobs.size(&digest).await?.is_none() {
        let Some(path) = &artifact.file else {
            // Found in the shared cache, then collected before this resolution kept it.
            return Err(ApiError::Internal(format!(
                "{}: the shared cache's copy was collected during the resolution; resolve again",
                artifact.coordinate
            )));
        };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
        let body = tokio_util::io::ReaderStream::new(file)
            .map(|chunk| chunk.map_err(|e| BodyError::Aborted(e.to_string())));
        blobs
            .put(&digest, Some(artifact.size), max_blob_size, body)
            .await?;
    }
    Ok(artifact.to_wire())
}

#[cfg(test)]
mod tests {
    use super::RequestRepositories;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("test URL")
    }

    #[test]
    fn policies_parse() {
        assert_eq!("any".parse(), Ok(RequestRepositories::Any));
        assert_eq!(" none ".parse(), Ok(RequestRepositories::None));
        assert_eq!(
            "https://nexus.example/maven, http://10.0.0.1:8081/".parse(),
            Ok(RequestRepositories::Under(vec![
                url("https://nexus.example/maven"),
                url("http://10.0.0.1:8081/")
            ]))
        );
        for bad in [
            "",
            ",",
            "file:///srv/maven",
            "nexus.example/maven",
            "s3://bucket/",
        ] {
            let e = bad.parse::<RequestRepositories>().expect_err(bad);
            assert!(e.contains("any`, `none`"), "{bad}: {e}");
        }
        // Credentials in a refused prefix are not echoed.
        let e = "ftp://user:secret@host/".parse::<RequestRepositories>();
        assert!(e.expect_err("ftp").contains("ftp://host/"));
    }

    #[test]
    fn prefixes_admit_what_is_under_them() {
        let policy: RequestRepositories = "https://nexus.example/maven,http://mirror:8081/"
            .parse()
            .expect("policy");
        for ok in [
            "https://nexus.example/maven/releases/",
            "http://mirror:8081/a/",
        ] {
            assert!(policy.allows(&url(ok)), "{ok}");
        }
        for refused in ["https://nexus.example/maven-evil/", "http://mirror:8082/"] {
            assert!(!policy.allows(&url(refused)), "{refused}");
        }
        assert!(RequestRepositories::Any.allows(&url("http://anywhere/")));
        assert!(!RequestRepositories::None.allows(&url("https://nexus.example/maven/")));
    }
}
