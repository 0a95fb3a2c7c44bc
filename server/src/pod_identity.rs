//! Pod identity: a pod fetches a bundle with its own ServiceAccount token instead of the
//! bundle's token from a Secret.
//!
//! The webhook projects a token for the audience `sparkstage` into the init container (see
//! `sparkstage_injection::pod::TokenVolume::ServiceAccount`). The server asks the API server
//! about it with a TokenReview for that audience, and admits the token to a bundle when it
//! belongs to a ServiceAccount of the bundle's namespace (and, with
//! `--pod-identity-service-accounts`, to one of those ServiceAccounts).
//!
//! Reviews are cached by the token's sha256 (never the token itself): a pod sends the same
//! token for its manifest and each of its blobs, and a thousand executors would otherwise mean
//! many thousands of TokenReviews. An accepted token is cached for [`ACCEPTED_TTL`], a refused one
//! for [`REFUSED_TTL`]; a review that failed (the API server did not answer) is not cached. The
//! cache holds at most [`CACHE_CAPACITY`] entries.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use sha2::{Digest as _, Sha256};
use sparkstage_injection::pod::TOKEN_AUDIENCE;
use tokio::time::Instant;

use crate::metrics::{Metrics, TokenReviewLabels};

/// How long an accepted token is taken without asking again. A pod deleted in that time keeps
/// its access for at most this long; its token expires anyway (10 minutes).
pub const ACCEPTED_TTL: Duration = Duration::from_secs(30);
/// How long a refused token is refused without asking again.
pub const REFUSED_TTL: Duration = Duration::from_secs(10);
pub const CACHE_CAPACITY: usize = 20_000;

/// Who a token belongs to, by the API server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewed {
    /// Authenticated for our audience as a ServiceAccount.
    ServiceAccount { namespace: String, name: String },
    /// Not authenticated, not for our audience, or not a ServiceAccount.
    Refused,
}

pub type ReviewFuture<'a> = Pin<Box<dyn Future<Output = Result<Reviewed, String>> + Send + 'a>>;

/// Asks the API server about a token. The error is a message for the log, without the token.
pub trait TokenReviewer: Send + Sync + std::fmt::Debug {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a>;
}

/// TokenReviews through `kube` (needs `create` on `tokenreviews.authentication.k8s.io`).
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: kube::Client,
}

impl std::fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeTokenReviewer")
    }
}

impl KubeTokenReviewer {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

/// What a TokenReview's answer says about the token.
pub fn reviewed(answer: &TokenReview) -> Reviewed {
    let Some(status) = &answer.status else {
        return Reviewed::Refused;
    };
    if status.authenticated != Some(true) {
        return Reviewed::Refused;
    }
    // With audiences in the request, an authenticated answer lists those the token is valid
    // for; an API server that ignores audiences would leave them out: refuse then.
    let for_us = status
        .audiences
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == TOKEN_AUDIENCE));
    let username = status.user.as_ref().and_then(|u| u.username.as_deref());
    match username
        .and_then(|u| u.strip_prefix("system:serviceaccount:"))
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) if for_us && !namespace.is_empty() && !name.is_empty() => {
            Reviewed::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        }
        _ => Reviewed::Refused,
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a> {
        Box::pin(async move {
            let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
            let request = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: Some(vec![TOKEN_AUDIENCE.to_owned()]),
                },
                ..TokenReview::default()
            };
            match api
                .create(&kube::api::PostParams::default(), &request)
                .await
            {
                Ok(answer) => Ok(reviewed(&answer)),
                // kube's errors name the status and reason; the request body (the token) is
                // not in them.
                Err(e) => Err(format!("TokenReview failed: {e}")),
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Cached {
    reviewed: Reviewed,
    until: Instant,
}

/// Admits pods' tokens to bundles.
#[derive(Debug)]
pub struct PodIdentity {
    reviewer: Arc<dyn TokenReviewer>,
    /// Empty: any ServiceAccount of the bundle's namespace.
    service_accounts: BTreeSet<String>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    metrics: Arc<Metrics>,
}

/// Whether a bearer token looks like a JWT (three base64url parts), as ServiceAccount tokens
/// are; bundle tokens (hex) never do, so they never cause a TokenReview.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= 16 << 10
        && token.split('.').count() == 3
        && token.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl PodIdentity {
    pub fn new(
        reviewer: Arc<dyn TokenReviewer>,
        service_accounts: impl IntoIterator<Item = String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            reviewer,
            service_accounts: service_accounts.into_iter().collect(),
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Whether `token` is a ServiceAccount token, for our audience, of a pod that may read a
    /// bundle of `namespace`. Any failure is a refusal (the caller answers as for an unknown
    /// bundle).
    pub async fn admits(&self, token: &str, namespace: Option<&str>) -> bool {
        let Some(namespace) = namespace else {
            // A bundle without a namespace belongs to no pod.
            return false;
        };
        if !looks_like_jwt(token) {
            return false;
        }
        let reviewed = match self.review(token).await {
            Some(r) => r,
            None => return false,
        };
        match reviewed {
            Reviewed::ServiceAccount {
                namespace: ns,
                name,
            } => {
                ns == namespace
                    && (self.service_accounts.is_empty() || self.service_accounts.contains(&name))
            }
            Reviewed::Refused => false,
        }
    }

    /// The cached or fresh review of `token`; `None` when the review failed.
    async fn review(&self, token: &str) -> Option<Reviewed> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(hit) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).filter(|c| c.until > now).cloned())
        {
            self.metrics.token_review_cache_hits.inc();
            return Some(hit.reviewed);
        }
        let outcome = |outcome| {
            self.metrics
                .token_reviews
                .get_or_create(&TokenReviewLabels { outcome })
                .inc();
        };
        let reviewed = match self.reviewer.review(token).await {
            Ok(r) => r,
            Err(message) => {
                outcome("failed");
                tracing::warn!(error = %message, "a pod's token could not be reviewed; refused");
                return None;
            }
        };
        let ttl = match &reviewed {
            Reviewed::ServiceAccount { .. } => {
                outcome("authenticated");
                ACCEPTED_TTL
            }
            Reviewed::Refused => {
                outcome("refused");
                REFUSED_TTL
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                let now = Instant::now();
                cache.retain(|_, c| c.until > now);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Cached {
                    reviewed: reviewed.clone(),
                    until: Instant::now() + ttl,
                },
            );
        }
        Some(reviewed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        answer: Result<Reviewed, String>,
    }

    impl TokenReviewer for Counting {
        fn review<'a>(&'a self, _: &'a str) -> ReviewFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answer.clone();
            Box::pin(async move { answer })
        }
    }

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

    fn identity(
        answer: Result<Reviewed, String>,
        accounts: &[&str],
    ) -> (PodIdentity, Arc<Counting>) {
        let reviewer = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            answer,
        });
        let identity = PodIdentity::new(
            Arc::clone(&reviewer) as Arc<dyn TokenReviewer>,
            accounts.iter().map(|s| (*s).to_owned()),
            Arc::new(Metrics::default()),
        );
        (identity, reviewer)
    }

    fn account(namespace: &str, name: &str) -> Result<Reviewed, String> {
        Ok(Reviewed::ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    #[tokio::test]
    async fn a_token_is_reviewed_once_and_admitted_to_its_namespace_only() {
        let (identity, reviewer) = identity(account("fixtures", "default"), &[]);
        for _ in 0..100 {
            assert!(identity.admits(JWT, Some("fixtures")).await);
        }
        assert!(!identity.admits(JWT, Some("other")).await);
        assert!(!identity.admits(JWT, None).await);
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 1);
        assert_eq!(identity.metrics.token_review_cache_hits.get(), 100);
    }

    #[tokio::test]
    async fn listed_service_accounts_only_and_failures_are_refusals_not_cached() {
        let (identity, _) = identity(account("fixtures", "default"), &["spark"]);
        assert!(!identity.admits(JWT, Some("fixtures")).await);
        let (identity, reviewer) = identity_failing();
        assert!(!identity.admits(JWT, Some("fixtures")).await);
        assert!(!identity.admits(JWT, Some("fixtures")).await);
        assert_eq!(
            reviewer.calls.load(Ordering::SeqCst),
            2,
            "failures are not cached"
        );
        // A bundle token (hex) is never sent for review.
        assert!(!identity.admits(&"ab".repeat(32), Some("fixtures")).await);
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 2);
    }

    fn identity_failing() -> (PodIdentity, Arc<Counting>) {
        identity(Err("connection refused".into()), &[])
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(JWT));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c d"));
        assert!(!looks_like_jwt(&"ab".repeat(32)));
    }
}
