//! Prometheus metrics, served at `GET /metrics` in the text exposition format. Requests are
//! labelled by route template (`/v1/bundles/{id}`), never by raw path, so ids and digests do not
//! explode the label space.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use sparkstage_api::lifecycle::DeleteReason;

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UploadLabels {
    /// `created`, `existing` or `rejected`.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResolutionLabels {
    /// `resolved`, `shared`, `cached` or `failed`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `expired`, `unused`, `owner_gone`, `namespace_gone` or `deleted`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `mutated`, `unchanged` or `denied`.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenReviewLabels {
    /// `authenticated`, `refused` (not authenticated, another audience, a namespace or
    /// ServiceAccount the bundle does not admit) or `failed` (the API server did not answer).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// fetched, recorded, revalidated, joined, joined_replica, failed, failure_remembered.
    pub outcome: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    pub sources: Family<SourceLabels, Counter>,
    pub source_origin_bytes: Counter,
    pub admission_reviews: Family<AdmissionLabels, Counter>,
    pub admission_duration: Histogram,
    pub token_reviews: Family<TokenReviewLabels, Counter>,
    pub token_review_cache_hits: Counter,
    pub bundles_deleted: Family<ReasonLabels, Counter>,
    pub gc_blobs_deleted: Counter,
    pub gc_bytes_freed: Counter,
    pub gc_duration: Histogram,
    pub storage_used: Gauge,
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub uploads: Family<UploadLabels, Counter>,
    pub upload_duration: Histogram,
    pub download_duration: Histogram,
    pub resolutions: Family<ResolutionLabels, Counter>,
}

fn duration_buckets() -> impl Iterator<Item = f64> {
    // 1 ms .. ~9 minutes
    exponential_buckets(0.001, 3.0, 13)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sparkstage");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(duration_buckets())
        });
        let bytes_received = Counter::default();
        let bytes_sent = Counter::default();
        let uploads = Family::<UploadLabels, Counter>::default();
        let upload_duration = Histogram::new(duration_buckets());
        let download_duration = Histogram::new(duration_buckets());
        let resolutions = Family::<ResolutionLabels, Counter>::default();
        let bundles_deleted = Family::<ReasonLabels, Counter>::default();
        for reason in DeleteReason::ALL {
            // Every reason shows from the start, at 0.
            let _ = bundles_deleted.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            });
        }
        let gc_blobs_deleted = Counter::default();
        let gc_bytes_freed = Counter::default();
        let gc_duration = Histogram::new(duration_buckets());
        let storage_used = Gauge::default();
        let admission_reviews = Family::<AdmissionLabels, Counter>::default();
        for result in ["mutated", "unchanged", "denied"] {
            let _ = admission_reviews.get_or_create(&AdmissionLabels { result });
        }
        // 50 µs .. ~0.8 s: an admission answer is expected in a few milliseconds.
        let admission_duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 15));
        let token_reviews = Family::<TokenReviewLabels, Counter>::default();
        for outcome in ["authenticated", "refused", "failed"] {
            let _ = token_reviews.get_or_create(&TokenReviewLabels { outcome });
        }
        let token_review_cache_hits = Counter::default();
        let sources = Family::<SourceLabels, Counter>::default();
        for outcome in [
            "fetched",
            "recorded",
            "joined",
            "joined_replica",
            "failed",
            "failure_remembered",
        ] {
            let _ = sources.get_or_create(&SourceLabels { outcome });
        }
        let source_origin_bytes = Counter::default();
        registry.register(
            "source_requests",
            "Requests for remote sources by outcome (fetched from the origin, recorded by any \
             replica, revalidated unchanged, joined to a fetch in flight here or on another \
             replica, failed, failure remembered)",
            sources.clone(),
        );
        registry.register(
            "source_origin_bytes",
            "Bytes of remote sources received from their origins",
            source_origin_bytes.clone(),
        );
        registry.register(
            "admission_reviews",
            "Pod admission reviews by result (mutated, unchanged, denied)",
            admission_reviews.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to answer one admission review",
            admission_duration.clone(),
        );
        registry.register(
            "token_reviews",
            "TokenReviews of pod ServiceAccount tokens sent to the API server, by outcome \
             (authenticated, refused, failed)",
            token_reviews.clone(),
        );
        registry.register(
            "token_review_cache_hits",
            "Pod tokens answered from the review cache, without a TokenReview",
            token_review_cache_hits.clone(),
        );
        registry.register(
            "bundles_deleted",
            "Bundles deleted, by reason (expired, unused, owner_gone, namespace_gone, deleted)",
            bundles_deleted.clone(),
        );
        registry.register(
            "gc_blobs_deleted",
            "Blobs deleted by garbage collection",
            gc_blobs_deleted.clone(),
        );
        registry.register(
            "gc_bytes_freed",
            "Bytes of blobs deleted by garbage collection",
            gc_bytes_freed.clone(),
        );
        registry.register(
            "gc_duration_seconds",
            "Time of one garbage collection",
            gc_duration.clone(),
        );
        registry.register(
            "storage_used_bytes",
            "Bytes of stored blobs, as this replica counts them",
            storage_used.clone(),
        );
        registry.register(
            "resolutions",
            "POST /v1/resolve requests by outcome (resolved, shared with an identical request \
             in flight, cached, failed)",
            resolutions.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by method and route template",
            request_duration.clone(),
        );
        registry.register(
            "blob_bytes_received",
            "Blob bytes received in upload bodies",
            bytes_received.clone(),
        );
        registry.register(
            "blob_bytes_sent",
            "Blob bytes sent in download bodies",
            bytes_sent.clone(),
        );
        registry.register(
            "blob_uploads",
            "Blob uploads by result (created, existing, rejected)",
            uploads.clone(),
        );
        registry.register(
            "blob_upload_duration_seconds",
            "Time to receive, verify and commit one blob upload",
            upload_duration.clone(),
        );
        registry.register(
            "blob_download_duration_seconds",
            "Time to send one blob download body to its end",
            download_duration.clone(),
        );
        Self {
            sources,
            source_origin_bytes,
            admission_reviews,
            admission_duration,
            token_reviews,
            token_review_cache_hits,
            bundles_deleted,
            gc_blobs_deleted,
            gc_bytes_freed,
            gc_duration,
            storage_used,
            registry,
            requests,
            request_duration,
            bytes_received,
            bytes_sent,
            uploads,
            upload_duration,
            download_duration,
            resolutions,
        }
    }
}

impl Metrics {
    /// Counts a bundle deleted for `reason`.
    pub fn bundle_deleted(&self, reason: DeleteReason) {
        self.bundles_deleted
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Middleware that counts every request by route template and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .request_duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            let used = state.blobs.usage().used();
            state
                .metrics
                .storage_used
                .set(i64::try_from(used).unwrap_or(i64::MAX));
            state.metrics.encode()
        },
    )
}
