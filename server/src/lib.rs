//! `sparkstage-server`: the staging server of sparkstage.
//!
//! It accepts an application's jars and files at submit time, stores them content-addressed
//! (sha256) through `object_store` (a local directory by default; S3, GCS or Azure so that
//! several replicas share one bucket), groups them into token-protected bundles, and serves
//! them to the init containers of driver and executor pods. The HTTP API is described in the
//! README; its wire types live in the `sparkstage-api` crate, shared with the init container
//! and the client.
//!
//! Layout of the store: `blobs/sha256/<2 hex>/<64 hex>` (see [`blob_store`]),
//! `bundles/<id>.json` and `access/<id>` (see [`bundle`]), `resolutions/<key>.json` and
//! `gc/condemned/<batch>.json` (see [`lifecycle`]) and the marker `sparkstage.json`.

pub mod auth;
pub mod blob_store;
pub mod bundle;
pub mod clock;
pub mod config;
pub mod connections;
pub mod error;
pub mod kube_access;
pub mod lifecycle;
pub mod maven_cache;
pub mod metrics;
pub mod pending;
pub mod pod_identity;
pub mod range;
pub mod request_body;
pub mod resolutions;
pub mod routes;
pub mod source_lease;
pub mod sources;
pub mod spool;
pub mod storage;
pub mod usage;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest as _, Sha256};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::blob_store::{BlobStore, DownloadBudget, WriteTuning};
use crate::bundle::Bundles;
use crate::clock::{SharedClock, SystemClock};
use crate::error::ApiError;
use crate::lifecycle::gc::Hooks;
use crate::lifecycle::owners::{NoOwners, Owners};
use crate::lifecycle::{Lifecycle, LifecycleSettings};
use crate::metrics::Metrics;
use crate::pod_identity::{PodIdentity, TokenReviewer};
use crate::resolutions::{MavenSettings, Resolutions};
use crate::storage::Storage;
use crate::usage::Usage;

/// Limits and policies of the API (the flags of [`config::Config`] that handlers need).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_blob_size: u64,
    pub max_bundle_entries: usize,
    pub body_idle_timeout: Duration,
    pub request_timeout: Duration,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub bundle_cache_ttl: Duration,
    /// `None`: 512 KiB for local and memory stores, 8 MiB for cloud stores.
    pub upload_part_size: Option<usize>,
    /// Bytes of blob content all downloads together hold at once ([`DownloadBudget`]).
    pub download_memory: usize,
    /// `POST /v1/resolve`: repositories, cache, offline, how long answers are kept.
    pub maven: MavenSettings,
    /// Sweep, garbage collection and owner tracking.
    pub lifecycle: LifecycleSettings,
    /// `--max-storage`: bytes of blobs past which uploads get 507.
    pub max_storage: Option<u64>,
    /// What the admission webhook writes into pods.
    pub webhook: webhook::WebhookSettings,
    /// With pod identity: the ServiceAccounts whose tokens open bundles (empty: any of the
    /// bundle's namespace).
    pub pod_identity_service_accounts: Vec<String>,
    /// Remote sources: freshness, failures, deadline (credentials: the Maven settings').
    pub sources: sources::SourceSettings,
    /// Where whole files are written before they become blobs (sources, the fork's uploads).
    pub spool_dir: std::path::PathBuf,
    /// How many spool files are written at once.
    pub spool_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_blob_size: 16 << 30,
            max_bundle_entries: 10_000,
            body_idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            default_ttl: Duration::from_secs(7 * 24 * 3600),
            max_ttl: Duration::from_secs(90 * 24 * 3600),
            bundle_cache_ttl: Duration::from_secs(5),
            upload_part_size: None,
            download_memory: 16 << 20,
            maven: MavenSettings::default(),
            lifecycle: LifecycleSettings::default(),
            max_storage: None,
            webhook: webhook::WebhookSettings::default(),
            pod_identity_service_accounts: Vec::new(),
            sources: sources::SourceSettings::default(),
            spool_dir: std::env::temp_dir().join("sparkstage-spool"),
            spool_concurrency: 4,
        }
    }
}

impl Settings {
    pub fn from_config(c: &config::Config) -> Self {
        Self {
            max_blob_size: c.max_blob_size,
            max_bundle_entries: c.max_bundle_entries,
            body_idle_timeout: c.body_idle_timeout,
            request_timeout: c.request_timeout,
            default_ttl: c.default_ttl,
            max_ttl: c.max_ttl,
            bundle_cache_ttl: c.bundle_cache_ttl,
            upload_part_size: c.upload_part_size.map(|s| s as usize),
            download_memory: usize::try_from(c.download_memory).unwrap_or(usize::MAX),
            maven: MavenSettings {
                repositories: c.maven_repositories.clone(),
                request_repositories: c.maven_request_repositories.clone(),
                // Read from --maven-credentials-file by the caller (reading a file can fail).
                credentials: Default::default(),
                cache: c.maven_cache.clone(),
                offline: c.maven_offline,
                answer_ttl: c.resolve_cache_ttl,
                limits: c.maven_limits.limits(),
            },
            lifecycle: LifecycleSettings {
                sweep_interval: c.sweep_interval,
                gc_interval: c.gc_interval,
                gc_grace: c.gc_grace,
                initial_access_timeout: c.initial_access_timeout,
                owner_grace: c.owner_grace,
                cache_max_size: c.cache_max_size,
                cache_max_age: c.cache_max_age,
            },
            max_storage: c.max_storage,
            webhook: webhook::WebhookSettings {
                init_image: c.init_image.clone(),
                init_pull_policy: c.init_pull_policy.clone(),
                server_url: c.pod_server_url.clone(),
                own_namespace: c.namespace.clone(),
            },
            pod_identity_service_accounts: c.pod_identity_service_accounts.clone(),
            sources: sources::SourceSettings {
                ttl: c.source_ttl,
                error_ttl: c.source_error_ttl,
                timeout: c.source_timeout,
                max_age: c.cache_max_age,
                ..sources::SourceSettings::default()
            },
            spool_dir: c
                .spool_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("sparkstage-spool")),
            spool_concurrency: c.spool_concurrency as usize,
        }
    }

    /// The largest JSON body: room for a full bundle of long names.
    fn json_body_limit(&self) -> usize {
        (self.max_bundle_entries.saturating_mul(1024)).max(1 << 20)
    }
}

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ObjectStore>,
    pub blobs: BlobStore,
    pub bundles: Arc<Bundles>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub resolutions: Arc<Resolutions>,
    pub lifecycle: Arc<Lifecycle>,
    pub clock: SharedClock,
    /// sha256 of the upload token; `None` when uploads need no token.
    pub upload_token_sha256: Option<[u8; 32]>,
    /// Pods' ServiceAccount tokens open bundles of their namespace (`--kubernetes`).
    pub pod_identity: Option<Arc<PodIdentity>>,
    /// Remote sources fetched once (issue 13).
    pub sources: Arc<sources::Sources>,
    /// Where sources and the fork's uploads are written before they are stored.
    pub spool: Arc<spool::Spool>,
}

/// What the server is given from outside rather than built: the clock, owner tracking, the
/// TokenReviews of pod identity, and hooks into garbage collection (tests).
#[derive(Clone, Debug)]
pub struct Injected {
    pub clock: SharedClock,
    pub owners: Arc<dyn Owners>,
    /// `Some`: pods may fetch bundles with their ServiceAccount token.
    pub token_reviewer: Option<Arc<dyn TokenReviewer>>,
    pub gc_hooks: Hooks,
}

impl Default for Injected {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            owners: Arc::new(NoOwners),
            token_reviewer: None,
            gc_hooks: Hooks::default(),
        }
    }
}

impl AppState {
    pub fn new(storage: &Storage, settings: Settings, upload_token: Option<&str>) -> Self {
        Self::with(storage, settings, upload_token, Injected::default())
    }

    pub fn with(
        storage: &Storage,
        settings: Settings,
        upload_token: Option<&str>,
        injected: Injected,
    ) -> Self {
        let cloud = storage.backend.is_cloud();
        let tuning = WriteTuning {
            part_size: settings
                .upload_part_size
                .unwrap_or(if cloud { 8 << 20 } else { 512 << 10 }),
            max_concurrency: if cloud { 4 } else { 2 },
        };
        let blobs = BlobStore::new(
            Arc::clone(&storage.store),
            tuning,
            DownloadBudget::new(settings.download_memory),
            Usage::new(settings.max_storage),
        );
        let bundles = Arc::new(Bundles::new(
            Arc::clone(&storage.store),
            settings.bundle_cache_ttl,
            Arc::clone(&injected.clock),
        ));
        let metrics = Arc::new(Metrics::default());
        let lifecycle = Lifecycle::new(
            Arc::clone(&storage.store),
            blobs.clone(),
            Arc::clone(&bundles),
            Arc::clone(&injected.clock),
            Arc::clone(&metrics),
            settings.lifecycle.clone(),
            injected.owners,
        )
        .with_hooks(injected.gc_hooks);
        let pod_identity = injected.token_reviewer.map(|reviewer| {
            Arc::new(PodIdentity::new(
                reviewer,
                settings.pod_identity_service_accounts.clone(),
                Arc::clone(&metrics),
            ))
        });
        let lifecycle = Arc::new(lifecycle);
        let spool = Arc::new(spool::Spool::new(
            settings.spool_dir.clone(),
            settings.spool_concurrency,
        ));
        let sources = Arc::new(sources::Sources::new(
            Arc::clone(&spool),
            Arc::clone(&storage.store),
            blobs.clone(),
            Arc::clone(&lifecycle),
            Arc::clone(&injected.clock),
            sources::SourceSettings {
                max_size: settings.max_blob_size,
                credentials: settings.maven.credentials.clone(),
                ..settings.sources.clone()
            },
            Arc::clone(&metrics),
        ));
        // The Maven resolver's cache is the sources' records (`maven_cache`).
        let resolutions = Arc::new(Resolutions::new(
            settings.maven.clone(),
            Some(Arc::clone(&sources) as Arc<dyn sparkstage_maven::shared::SharedCache>),
        ));
        Self {
            pod_identity,
            sources,
            spool,
            store: Arc::clone(&storage.store),
            blobs,
            bundles,
            metrics,
            resolutions,
            lifecycle,
            clock: injected.clock,
            settings: Arc::new(settings),
            upload_token_sha256: upload_token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }
}

/// The key of the layout marker.
pub const LAYOUT_MARKER: &str = "sparkstage.json";
const LAYOUT_VERSION: u32 = 1;

/// Writes the layout marker if it is missing, and refuses a store of another layout version.
/// `/readyz` reads it back to tell that the store answers.
pub async fn ensure_layout(store: &dyn ObjectStore) -> anyhow::Result<()> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Marker {
        layout: u32,
    }
    let path = Path::from(LAYOUT_MARKER);
    match store.get(&path).await {
        Ok(found) => {
            let bytes = found.bytes().await?;
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{LAYOUT_MARKER} in the storage is not sparkstage's: {e}")
            })?;
            anyhow::ensure!(
                marker.layout == LAYOUT_VERSION,
                "the storage holds sparkstage layout {} but this server knows layout \
                 {LAYOUT_VERSION}; use a server version that matches",
                marker.layout
            );
            Ok(())
        }
        Err(object_store::Error::NotFound { .. }) => {
            let json = serde_json::to_vec(&Marker {
                layout: LAYOUT_VERSION,
            })?;
            store.put(&path, PutPayload::from(json)).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let json_limit = state.settings.json_body_limit();
    let timeout = state.settings.request_timeout;
    let body_idle = state.settings.body_idle_timeout;
    // Routes whose handlers finish quickly get a deadline to their response head; blob uploads
    // stream their body inside the handler and are bounded by the body idle timeout instead.
    let bounded = Router::new()
        .merge(routes::blobs::bounded_router())
        .merge(routes::bundles::router())
        .merge(routes::fork::router())
        .merge(routes::health::router())
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            deadline(timeout, req, next)
        }));
    Router::new()
        .merge(routes::blobs::upload_router())
        .merge(routes::fork::upload_router())
        .merge(routes::sources::router())
        .merge(routes::resolve::router())
        .merge(routes::gc::router())
        .merge(bounded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            request_body::limit_idle(body_idle, req, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The JSON calls' deadline: past it, the answer is 408 when the request's body had not all
/// arrived (the client is slow), else 503 (the storage did not answer).
async fn deadline(timeout: Duration, req: Request, next: Next) -> Response {
    let body = req.extensions().get::<request_body::BodyDone>().cloned();
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) if body.is_some_and(|b| !b.is_done()) => {
            ApiError::BodyTooSlow(timeout).into_response()
        }
        Err(_) => ApiError::StorageTimeout(timeout).into_response(),
    }
}

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NoSuchEndpoint(format!("{method} {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// One log span per request: method, path (never the query or headers, which can carry
/// secrets) and the request id that is also sent back as `x-request-id`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}
