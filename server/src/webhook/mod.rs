//! The mutating admission webhook: `POST /v1/admission/pods` (AdmissionReview v1), served on a
//! TLS listener of its own ([`tls`]), adds sparkstage's init container to the pods that ask for
//! it, whoever creates them (spark-submit, the spark-operator, Airflow, a notebook).
//!
//! A pod asks with the label `sparkstage.io/inject: "true"` (the webhook configuration's
//! objectSelector) and says what to fetch with annotations
//! ([`sparkstage_injection::webhook`]):
//! `sparkstage.io/bundle` (a bundle id) and/or `sparkstage.io/sources` (comma-separated URLs,
//! each optionally `#sha256=<hex>`), and optionally `sparkstage.io/jars-dir`,
//! `sparkstage.io/files-dir` and `sparkstage.io/container` (Spark's container, when the pod
//! template named it otherwise).
//!
//! The answer is a JSON patch that adds exactly what `sparkstage submit`'s pod templates add
//! (`sparkstage_injection`), and the label `sparkstage.io/bundle` that owner tracking watches.
//! - A pod without the label, a pod in `kube-system` or in the server's own namespace, and
//!   anything but a pod CREATE is allowed unchanged.
//! - A pod that has our init container already is allowed unchanged (the webhook's
//!   reinvocation, an API server's retry, a template that injected it).
//! - A malformed annotation, an unknown bundle, a bundle of another namespace, or a pod that
//!   uses one of our names or paths is denied, with a message that says what to fix.
//! - The review has no side effects, so a `dryRun` review gets the same answer.
//!
//! The patch is the difference between the pod as read and the pod with our parts: it only
//! adds, and adds whole lists where the pod has none (the API server refuses an append to a
//! list that does not exist: `doc is missing path "/spec/initContainers/-"`).

pub mod tls;

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use sparkstage_injection::pod::{INIT_CONTAINER, NAME_PREFIX, has_init_container, secret_name};
use sparkstage_injection::{Injection, Role, TokenVolume};
use url::Url;

use crate::AppState;
use crate::metrics::AdmissionLabels;

/// The webhook's path.
pub const ADMISSION_PATH: &str = "/v1/admission/pods";
pub use sparkstage_injection::webhook::{
    Asked, BUNDLE_ANNOTATION, CONTAINER_ANNOTATION, FILES_DIR_ANNOTATION, INJECT_LABEL,
    JARS_DIR_ANNOTATION, MAX_SOURCES, SOURCES_ANNOTATION, asked,
};
/// The largest review body read. A Spark pod's review is about 10 KiB; etcd keeps objects up to
/// 1.5 MiB.
pub const MAX_REVIEW_BYTES: usize = 2 << 20;
/// Reviews read and answered at once; more wait, unread, for their turn. With
/// [`MAX_REVIEW_BYTES`] this bounds the webhook's memory (a review is held as bytes, a JSON
/// value and a pod at once) whatever the API server, or anyone reaching the port, sends.
pub const REVIEWS_AT_ONCE: usize = 4;
/// Connections the webhook's listener serves at once (API servers keep a few each).
pub const MAX_CONNECTIONS: usize = 256;

/// What the webhook writes into pods.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The init container's image.
    pub init_image: String,
    pub init_pull_policy: Option<String>,
    /// The server's URL as pods reach it (the Service).
    pub server_url: Option<Url>,
    /// The server's own namespace, whose pods are never mutated.
    pub own_namespace: Option<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            init_image: sparkstage_injection::pod::DEFAULT_INIT_IMAGE.to_owned(),
            init_pull_policy: None,
            server_url: None,
            own_namespace: None,
        }
    }
}

/// The webhook's routes (for the TLS listener only).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(ADMISSION_PATH, post(admit))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            REVIEWS_AT_ONCE,
        ))
        .with_state(state)
}

/// How a review ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Mutated,
    Unchanged,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutated => "mutated",
            Self::Unchanged => "unchanged",
            Self::Denied => "denied",
        }
    }
}

async fn admit(State(state): State<AppState>, body: Bytes) -> Response {
    let started = Instant::now();
    // One pass from the bytes to a typed pod. A review of another kind (a rule wider than
    // pods) is read again loosely, to be allowed unchanged.
    let (response, outcome, request) = match serde_json::from_slice::<AdmissionReview<Pod>>(&body) {
        Ok(review) => match TryInto::<AdmissionRequest<Pod>>::try_into(review) {
            Ok(request) => {
                let (response, outcome) = decide(&state, &request).await;
                (response, outcome, Summary::of(&request))
            }
            Err(_) => return no_request(),
        },
        Err(e) => match serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body) {
            Ok(review) => match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
                Ok(request) => {
                    let allowed = AdmissionResponse::from(&request);
                    let (response, outcome) = if request.kind.kind == "Pod" {
                        denied(allowed, &format!("cannot read the pod: {e}"))
                    } else {
                        (allowed, Outcome::Unchanged)
                    };
                    (response, outcome, Summary::of(&request))
                }
                Err(_) => return no_request(),
            },
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("not an AdmissionReview: {e}"),
                )
                    .into_response();
            }
        },
    };
    state
        .metrics
        .admission_reviews
        .get_or_create(&AdmissionLabels {
            result: outcome.as_str(),
        })
        .inc();
    state
        .metrics
        .admission_duration
        .observe(started.elapsed().as_secs_f64());
    if outcome == Outcome::Denied {
        tracing::info!(
            uid = %request.uid,
            namespace = %request.namespace,
            name = %request.name,
            reason = %response.result.message,
            "pod denied"
        );
    }
    match wire(response) {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The review as the API server reads it. `kube` writes the patch (`Vec<u8>`) as an array of
/// numbers; the API server's type is Go's `[]byte`, whose JSON form is a base64 string, which
/// is what the responses recorded from a real API server carry.
fn wire(response: AdmissionResponse) -> Result<serde_json::Value, serde_json::Error> {
    use base64::Engine as _;
    let patch = response
        .patch
        .as_ref()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let mut body = serde_json::to_value(response.into_review())?;
    if let (Some(patch), Some(answer)) = (patch, body.get_mut("response")) {
        answer["patch"] = serde_json::Value::String(patch);
    }
    Ok(body)
}

/// What the log says of a request.
struct Summary {
    uid: String,
    namespace: String,
    name: String,
}

impl Summary {
    fn of<T: kube::Resource>(request: &AdmissionRequest<T>) -> Self {
        Self {
            uid: request.uid.clone(),
            namespace: request.namespace.clone().unwrap_or_default(),
            name: request.name.clone(),
        }
    }
}

fn no_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "the AdmissionReview has no request",
    )
        .into_response()
}

/// `allowed` turned into a denial for `message`.
fn denied(allowed: AdmissionResponse, message: &str) -> (AdmissionResponse, Outcome) {
    let mut denied = allowed.deny(format!("sparkstage: {message}"));
    denied.result.code = 403;
    denied.result.reason = "Forbidden".to_owned();
    (denied, Outcome::Denied)
}

/// The answer to one review.
pub async fn decide(
    state: &AppState,
    request: &AdmissionRequest<Pod>,
) -> (AdmissionResponse, Outcome) {
    let allowed = AdmissionResponse::from(request);
    match injection_for(state, request).await {
        Ok(None) => (allowed, Outcome::Unchanged),
        Ok(Some(patch)) if patch.0.is_empty() => (allowed, Outcome::Unchanged),
        Ok(Some(patch)) => match allowed.with_patch(patch) {
            Ok(patched) => (patched, Outcome::Mutated),
            Err(e) => denied(AdmissionResponse::from(request), &e.to_string()),
        },
        Err(message) => denied(allowed, &message),
    }
}

/// The patch for the request: `Ok(None)` when the webhook leaves it alone, `Err` with the
/// reason to deny it.
async fn injection_for(
    state: &AppState,
    request: &AdmissionRequest<Pod>,
) -> Result<Option<sparkstage_injection::json_patch::Patch>, String> {
    let settings = &state.settings.webhook;
    if request.operation != Operation::Create
        || request.kind.kind != "Pod"
        || request.sub_resource.is_some()
    {
        return Ok(None);
    }
    let namespace = request.namespace.as_deref().unwrap_or_default();
    if namespace == "kube-system" || settings.own_namespace.as_deref() == Some(namespace) {
        return Ok(None);
    }
    let Some(pod) = &request.object else {
        return Ok(None);
    };
    let labelled = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(INJECT_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled {
        return Ok(None);
    }
    if has_init_container(pod) {
        return Ok(None);
    }
    let asked = asked(pod)?;
    if let Some(bundle) = &asked.bundle {
        let record = state.bundles.find(bundle).await.map_err(|e| {
            format!("cannot look up bundle {bundle} now ({e}); the pod can be created again")
        })?;
        let Some(record) = record else {
            return Err(format!(
                "bundle {bundle} does not exist on the staging server (never created, expired or \
                 deleted); stage the application again"
            ));
        };
        let owner_namespace = record
            .manifest
            .owner
            .as_ref()
            .and_then(|o| o.namespace.as_deref());
        if let Some(owner_namespace) = owner_namespace
            && owner_namespace != namespace
        {
            return Err(format!(
                "bundle {bundle} belongs to namespace {owner_namespace}, not {namespace}; stage \
                 it for this namespace"
            ));
        }
        if owner_namespace.is_none() && state.pod_identity.is_some() {
            return Err(format!(
                "bundle {bundle} was staged for no namespace, and pods fetch with their own \
                 token, which opens only the bundles of their namespace; stage it with \
                 `sparkstage upload --namespace {namespace}`"
            ));
        }
    }
    let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
    if spec.containers.is_empty() {
        return Err("the pod has no containers".to_owned());
    }
    let used = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str()),
        )
        .chain(spec.containers.iter().map(|c| c.name.as_str()));
    if let Some(name) = used.into_iter().find(|n| n.starts_with(NAME_PREFIX)) {
        return Err(format!(
            "the pod already has a volume or container named {name:?}; names starting with \
             {NAME_PREFIX:?} are sparkstage's (the init container is {INIT_CONTAINER:?})"
        ));
    }
    let server_url = match (&asked.bundle, &settings.server_url) {
        (Some(_), None) => {
            return Err(
                "this staging server has no --pod-server-url, so pods cannot reach it for a \
                 bundle; ask its operator"
                    .to_owned(),
            );
        }
        (Some(_), Some(url)) => Some(url.clone()),
        (None, _) => None,
    };
    let args = asked.init_args(server_url);
    // Without a bundle there is no token volume at all (`Injection::volumes`).
    let token = match (&state.pod_identity, &asked.bundle) {
        (None, Some(bundle)) => TokenVolume::Secret {
            name: secret_name(bundle),
        },
        _ => TokenVolume::ServiceAccount,
    };
    let injection = Injection {
        image: settings.init_image.clone(),
        image_pull_policy: settings.init_pull_policy.clone(),
        token,
        args,
    };
    let role = Role::of_pod(pod);
    let which = asked.spark_container(role);
    let patch = injection.patch(pod, role, which).map_err(|e| match e {
        sparkstage_injection::pod::InjectError::NoSuchContainer { name, .. } => {
            format!("the pod has no container named {name:?} ({CONTAINER_ANNOTATION})")
        }
        other => format!("{other} ({JARS_DIR_ANNOTATION}, {FILES_DIR_ANNOTATION})"),
    })?;
    Ok(Some(patch))
}
