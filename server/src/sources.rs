//! Remote sources fetched once for the whole cluster: the pull-through artifact cache (issue
//! 13).
//!
//! A source is a URL the init container could fetch itself (http(s), s3/s3a, gs, az/abfs,
//! hdfs/webhdfs). The server fetches it with the init container's own fetcher
//! (`sparkstage_init::fetch`: retries, resume, WebHDFS, object stores) into a spool file in the
//! temporary directory, verified against its digest when one is given, stores it as a blob, and
//! writes a source record `sources/<sha256 of the normalized URL>.json` (its digest, size and
//! when it was fetched) so that every replica on the bucket finds it. Concurrent requests for a
//! source share one fetch in a replica (single flight); a failure is remembered for
//! `error_ttl`, and every waiter gets the same error naming the source.
//!
//! Freshness: a source asked for with a digest is immutable (a record with that digest
//! answers); one without is revalidated after `ttl`: a conditional `HEAD` (`If-None-Match` with
//! the ETag, else `If-Modified-Since`) for http(s), the object's ETag or modification time for
//! object stores. Unchanged (304, or the same validator), the record is renewed and nothing is
//! downloaded; changed, or without validators (WebHDFS), the source is fetched again and becomes
//! a new blob (bundles keep the digests they were created with). The validators are read
//! before the download, so a change during it shows at the next revalidation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;
use tokio::time::Instant;
use url::Url;

use crate::blob_store::BlobStore;
use crate::clock::SharedClock;
use crate::error::ApiError;

/// How sources are fetched and kept.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// A source without a digest is fetched again after this.
    pub ttl: Duration,
    /// A failure is answered from memory for this long.
    pub error_ttl: Duration,
    /// One fetch's deadline, attempts included.
    pub timeout: Duration,
    /// The largest source.
    pub max_size: u64,
    /// How long a source record keeps its blob after it was last used.
    pub max_age: Duration,
    /// `Authorization` values for http(s) origins by URL prefix (the `--maven-credentials-file`
    /// format and file: one place for the cluster's origin credentials, never sent to pods).
    pub credentials: sparkstage_maven::credentials::Credentials,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            error_ttl: Duration::from_secs(15),
            timeout: Duration::from_secs(600),
            max_size: 16 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            credentials: Default::default(),
        }
    }
}

/// What the store keeps of a fetched source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The normalized URL, without user info.
    pub url: String,
    pub digest: Digest,
    pub size: u64,
    /// When it was fetched, or last found unchanged at the origin.
    pub fetched_at: DateTime<Utc>,
    /// Until when the record keeps its blob from garbage collection: `--cache-max-age` after it
    /// was last used (extended at most hourly). Then the sweep deletes it, and the blob goes
    /// unless a bundle refers to it.
    pub expires_at: DateTime<Utc>,
    /// The origin's validators of what was fetched, for revalidation after the ttl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// A source's digest and size, once stored.
pub type Stored = (Digest, u64);
type Flight = Shared<BoxFuture<'static, Result<Stored, Arc<str>>>>;

/// The sources of one replica.
pub struct Sources {
    store: Arc<dyn ObjectStore>,
    blobs: BlobStore,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
    clock: SharedClock,
    settings: SourceSettings,
    spool: Arc<crate::spool::Spool>,
    origins: Mutex<sparkstage_init::Origins>,
    in_flight: Mutex<HashMap<String, Flight>>,
    failures: Mutex<HashMap<String, (Instant, Arc<str>)>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// For fetches and revalidation (`HEAD`): one connection pool for the replica.
    http: reqwest::Client,
}

/// The URL of a source as the records key it: parsed (scheme and host lowercased), `s3a` as
/// `s3`, without the fragment; credentials in it are refused (they belong in the server's
/// credentials file, never in a record or a log).
pub fn normalize(source: &str) -> Result<Url, ApiError> {
    let bad = |why: String| ApiError::bad_request("bad_source", why);
    let mut url = Url::parse(source.trim()).map_err(|e| {
        bad(format!(
            "{} is not a URL: {e}",
            sparkstage_api::shown::outside(source, 200)
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!(
            "{}: a source carries no credentials; the server's own identity or its credentials \
             file gives them",
            sparkstage_api::shown::url(&url)
        )));
    }
    if !sparkstage_injection::command::SOURCE_SCHEMES.contains(&url.scheme()) {
        return Err(bad(format!(
            "{}: the scheme is not one of {:?}",
            sparkstage_api::shown::url(&url),
            sparkstage_injection::command::SOURCE_SCHEMES
        )));
    }
    url.set_fragment(None);
    if url.scheme() == "s3a" {
        let text = url.as_str().replacen("s3a://", "s3://", 1);
        url = Url::parse(&text).map_err(|e| bad(e.to_string()))?;
    }
    Ok(url)
}

/// The record's key of `url`: the sha256 of its text.
pub fn key(url: &Url) -> String {
    hex::encode(Sha256::digest(url.as_str().as_bytes()))
}

/// Where source records live.
pub const SOURCES_PREFIX: &str = "sources";

fn record_path(key: &str) -> Path {
    Path::from(format!("{SOURCES_PREFIX}/{key}.json"))
}

/// An origin's connection must be made within this, and a response must not go silent longer
/// than this (the init container's defaults).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The ETag and Last-Modified of an origin's answer.
fn validators_of(r: &reqwest::Response) -> (Option<String>, Option<String>) {
    let header = |name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        header(reqwest::header::ETAG),
        header(reqwest::header::LAST_MODIFIED),
    )
}

/// How often a replica waiting for another's fetch looks for its record.
const HOLDER_POLL: Duration = Duration::from_millis(250);

/// A used record's life is extended at most this often (a write per source per replica).
const EXTEND_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl Sources {
    pub fn new(
        spool: Arc<crate::spool::Spool>,
        store: Arc<dyn ObjectStore>,
        blobs: BlobStore,
        lifecycle: Arc<crate::lifecycle::Lifecycle>,
        clock: SharedClock,
        settings: SourceSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            store,
            blobs,
            lifecycle,
            clock,
            settings,
            spool,
            origins: Mutex::new(sparkstage_init::Origins::new(
                Default::default(),
                None,
                CONNECT_TIMEOUT,
                READ_TIMEOUT,
            )),
            in_flight: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            metrics,
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The request headers for `url`: its `Authorization` from the credentials, marked
    /// sensitive (never shown).
    fn authorization(&self, url: &Url) -> Result<reqwest::header::HeaderMap, Arc<str>> {
        let mut headers = reqwest::header::HeaderMap::new();
        if matches!(url.scheme(), "http" | "https")
            && let Some(value) = self.settings.credentials.authorization(url)
        {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                Arc::<str>::from(
                    "the credentials file's value for this source is not a header value",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// How long a failure is remembered.
    pub fn error_ttl(&self) -> Duration {
        self.settings.error_ttl
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .sources
            .get_or_create(&crate::metrics::SourceLabels { outcome })
            .inc();
    }

    /// The source record of `key`, if there is one and its blob is stored (a record outlived
    /// by its blob is as good as none).
    async fn record(&self, key: &str) -> Result<Option<SourceRecord>, ApiError> {
        let record: Option<SourceRecord> =
            crate::storage::read_json(self.store.as_ref(), &record_path(key)).await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let stored = self.blobs.size(&record.digest).await? == Some(record.size);
        Ok(stored.then_some(record))
    }

    /// The stored blob of `source` (verified against `expected` when given): from a record any
    /// replica wrote, else fetched from the origin once, whoever else asks meanwhile.
    pub async fn get(
        self: &Arc<Self>,
        source: &str,
        expected: Option<Digest>,
    ) -> Result<Stored, ApiError> {
        let url = normalize(source)?;
        let key = key(&url);
        let shown = sparkstage_api::shown::url(&url);
        let mut stale = None;
        if let Some(record) = self.record(&key).await? {
            let fresh = match expected {
                Some(digest) => record.digest == digest,
                None => {
                    let age = self.clock.now() - record.fetched_at;
                    age.to_std().is_ok_and(|age| age < self.settings.ttl)
                }
            };
            if fresh {
                self.count("recorded");
                self.extend(&key, &record).await;
                return Ok((record.digest, record.size));
            }
            if expected.is_none() {
                stale = Some(record);
            }
        }
        // Fetches and failures are shared by the requests that expect the same bytes: a
        // request with a wrong digest neither fails the others nor is answered by their fetch.
        let flight_key = match expected {
            Some(digest) => format!("{key}@{digest}"),
            None => key.clone(),
        };
        let failed = {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            failures
                .get(&flight_key)
                .filter(|(at, _)| at.elapsed() < self.settings.error_ttl)
                .map(|(_, error)| Arc::clone(error))
        };
        if let Some(error) = failed {
            self.count("failure_remembered");
            return Err(ApiError::Upstream(format!("{shown}: {error}")));
        }
        let flight = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&flight_key) {
                Some(flight) => {
                    self.count("joined");
                    flight.clone()
                }
                None => {
                    // A task of its own: the fetch (and its lease) runs to its end even when
                    // every request waiting for it is gone. It remembers a failure, then leaves
                    // the map (under its lock, which is held here until the entry is in).
                    let this = Arc::clone(self);
                    let (url, key2, flight_key2) = (url.clone(), key.clone(), flight_key.clone());
                    let task = tokio::spawn(async move {
                        let result = Arc::clone(&this).refresh(url, key2, expected, stale).await;
                        if let Err(error) = &result {
                            this.failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(flight_key2.clone(), (Instant::now(), Arc::clone(error)));
                        }
                        this.in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&flight_key2);
                        result
                    });
                    let flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(Arc::from(format!("its fetch stopped: {e}").as_str()))
                        })
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(flight_key, flight.clone());
                    flight
                }
            }
        };
        flight
            .await
            .map_err(|error| ApiError::Upstream(format!("{shown}: {error}")))
    }

    /// A stale record revalidated at the origin (renewed when unchanged), else a fetch.
    async fn refresh(
        self: Arc<Self>,
        url: Url,
        key: String,
        expected: Option<Digest>,
        stale: Option<SourceRecord>,
    ) -> Result<Stored, Arc<str>> {
        if let Some(mut record) = stale
            && self.unchanged(&url, &record).await
        {
            record.fetched_at = self.clock.now();
            record.expires_at = self.expiry();
            self.write_record(&key, &record)
                .await
                .map_err(|e| Arc::<str>::from(e.as_str()))?;
            self.count("revalidated");
            return Ok((record.digest, record.size));
        }
        self.fetch(url, key, expected).await
    }

    /// A `HEAD` of an http(s) `url` with its credentials and, when given, one conditional
    /// header; `None` when it could not be sent or got no answer.
    async fn head(
        &self,
        url: &Url,
        conditional: Option<(reqwest::header::HeaderName, &str)>,
    ) -> Option<reqwest::Response> {
        let mut headers = self.authorization(url).ok()?;
        if let Some((name, value)) = conditional
            && let Ok(value) = reqwest::header::HeaderValue::from_str(value)
        {
            headers.insert(name, value);
        }
        self.http
            .head(url.clone())
            .headers(headers)
            .timeout(READ_TIMEOUT)
            .send()
            .await
            .ok()
    }

    /// The origin's validators of `url` now (ETag, Last-Modified), when it gives them.
    async fn validators(&self, url: &Url) -> (Option<String>, Option<String>) {
        match url.scheme() {
            "http" | "https" => match self.head(url, None).await {
                Some(r) if r.status().is_success() => validators_of(&r),
                _ => (None, None),
            },
            _ if sparkstage_init::object::is_object_url(url) => {
                let Ok((store, path)) = sparkstage_init::object::open(url) else {
                    return (None, None);
                };
                match store.head(&path).await {
                    Ok(meta) => (meta.e_tag, Some(meta.last_modified.to_rfc3339())),
                    Err(_) => (None, None),
                }
            }
            _ => (None, None),
        }
    }

    /// Whether the origin says `record`'s bytes are still what `url` serves: a 304 to a
    /// conditional `HEAD` (`If-None-Match` with the ETag, else `If-Modified-Since`), or the
    /// same validator. Without validators, or on any failure: no.
    async fn unchanged(&self, url: &Url, record: &SourceRecord) -> bool {
        let now = if matches!(url.scheme(), "http" | "https") {
            let conditional = match (&record.etag, &record.last_modified) {
                (Some(etag), _) => (reqwest::header::IF_NONE_MATCH, etag),
                (None, Some(date)) => (reqwest::header::IF_MODIFIED_SINCE, date),
                (None, None) => return false,
            };
            match self.head(url, Some((conditional.0, conditional.1))).await {
                Some(r) if r.status() == reqwest::StatusCode::NOT_MODIFIED => return true,
                // An origin that ignores the condition still gives its validators.
                Some(r) if r.status().is_success() => validators_of(&r),
                _ => return false,
            }
        } else {
            self.validators(url).await
        };
        match (&record.etag, &record.last_modified) {
            (Some(etag), _) => now.0.as_ref() == Some(etag),
            (None, Some(date)) => now.1.as_ref() == Some(date),
            (None, None) => false,
        }
    }

    /// When the record is `--cache-max-age` from expiring: now.
    fn expiry(&self) -> DateTime<Utc> {
        self.clock.now()
            + chrono::Duration::from_std(self.settings.max_age).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Extends a used record's life, when it was last extended more than an hour ago.
    async fn extend(&self, key: &str, record: &SourceRecord) {
        let expiry = self.expiry();
        if expiry - record.expires_at > EXTEND_EVERY {
            let mut record = record.clone();
            record.expires_at = expiry;
            if let Err(e) = self.write_record(key, &record).await {
                tracing::warn!(error = %e, "could not extend a source record");
            }
        }
    }

    async fn write_record(&self, key: &str, record: &SourceRecord) -> Result<(), String> {
        let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        self.store
            .put(&record_path(key), json.into())
            .await
            .map_err(|e| format!("writing its record: {e}"))?;
        Ok(())
    }

    /// One fetch for every replica on the bucket: under the source's lease
    /// (`crate::source_lease`), or waiting for the replica that holds it.
    async fn fetch(
        self: Arc<Self>,
        url: Url,
        key: String,
        expected: Option<Digest>,
    ) -> Result<Stored, Arc<str>> {
        use crate::source_lease::{Leases, RENEW, Taken};
        let deadline = Instant::now() + self.settings.timeout + crate::source_lease::LEASE;
        let leases = Leases {
            store: self.store.as_ref(),
            clock: &self.clock,
        };
        loop {
            match leases.take(&key).await {
                Taken::Held(lease) => {
                    let fetch = Arc::clone(&self).fetch_from_origin(url, key.clone(), expected);
                    tokio::pin!(fetch);
                    let mut renew = tokio::time::interval_at(Instant::now() + RENEW, RENEW);
                    let result = loop {
                        tokio::select! {
                            result = &mut fetch => break result,
                            _ = renew.tick() => leases.renew(&key, &lease).await,
                        }
                    };
                    leases.release(&key, &lease).await;
                    return result;
                }
                Taken::Unavailable(why) => {
                    tracing::warn!(error = %why, "fetching a source without a lease");
                    return Arc::clone(&self)
                        .fetch_from_origin(url, key, expected)
                        .await;
                }
                Taken::Elsewhere(lease) => {
                    if let Some(stored) = self
                        .wait_for_holder(&leases, &key, &lease, expected, deadline)
                        .await?
                    {
                        self.count("joined_replica");
                        return Ok(stored);
                    }
                    // Released or dead without a record (its fetch failed): take it here.
                }
            }
        }
    }

    /// Waits while another replica holds the lease of `key`: the record its fetch wrote, or
    /// `None` once the lease is released or dead without one.
    async fn wait_for_holder(
        &self,
        leases: &crate::source_lease::Leases<'_>,
        key: &str,
        lease: &crate::source_lease::LeaseFile,
        expected: Option<Digest>,
        deadline: Instant,
    ) -> Result<Option<Stored>, Arc<str>> {
        let written = || async {
            let record = self.record(key).await.ok()??;
            let fits = record.fetched_at >= lease.taken_at
                && expected.is_none_or(|digest| digest == record.digest);
            fits.then_some((record.digest, record.size))
        };
        loop {
            tokio::time::sleep(HOLDER_POLL).await;
            if let Some(stored) = written().await {
                return Ok(Some(stored));
            }
            match leases.read(key).await {
                Ok(Some(now)) if now.holder == lease.holder && leases.is_live(&now) => {}
                // The holder writes its record before it releases the lease: look once more.
                _ => return Ok(written().await),
            }
            if Instant::now() >= deadline {
                return Err(Arc::from(format!(
                    "another replica's fetch of it did not finish within {}",
                    humantime::format_duration(self.settings.timeout)
                )));
            }
        }
    }

    /// One fetch from the origin: into the spool, verified, stored as a blob, recorded.
    async fn fetch_from_origin(
        self: Arc<Self>,
        url: Url,
        key: String,
        expected: Option<Digest>,
    ) -> Result<Stored, Arc<str>> {
        let fail = |e: String| Arc::<str>::from(e);
        // Read before the download: a change during it shows at the next revalidation.
        let (etag, last_modified) = match expected {
            Some(_) => (None, None),
            None => self.validators(&url).await,
        };
        // A turn in the spool: at most --spool-concurrency files are written at once.
        let _turn = self.spool.turn().await.map_err(|e| fail(e.to_string()))?;
        let origin = self
            .origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .origin(&url, self.authorization(&url)?)
            .map_err(fail)?;
        let job = sparkstage_init::fetch::Job {
            source: sparkstage_api::shown::url(&url),
            origin,
            dir: self.spool.dir().to_owned(),
            name: format!("source-{key}"),
            sha256: expected,
            size: None,
            // A hostile or broken origin is cut off at the largest source, not at a full disk.
            max_size: Some(self.settings.max_size),
        };
        let transfer = sparkstage_init::fetch::Transfer {
            client: self.http.clone(),
            policy: sparkstage_init::backoff::RetryPolicy {
                initial: Duration::from_millis(200),
                max_delay: Duration::from_secs(10),
                max_attempts: 5,
            },
            jitter: sparkstage_init::backoff::random_jitter(),
            deadline: Instant::now() + self.settings.timeout,
            timeout: self.settings.timeout,
        };
        let fetched = match transfer.fetch(&job, None).await {
            Ok(fetched) => fetched,
            Err(failure) => {
                self.count("failed");
                return Err(fail(failure.error));
            }
        };
        self.count("fetched");
        self.metrics.source_origin_bytes.inc_by(fetched.received);
        let spooled = job.final_path();
        let stored = self
            .store_file(
                &url,
                &spooled,
                (fetched.digest, fetched.size),
                (etag, last_modified),
            )
            .await;
        let _ = tokio::fs::remove_file(&spooled).await;
        stored
            .map(|()| (fetched.digest, fetched.size))
            .map_err(fail)
    }

    /// Stores the verified local `file` fetched from `url` as its blob, and records it with
    /// the origin's validators.
    async fn store_file(
        &self,
        url: &Url,
        file: &std::path::Path,
        (digest, size): Stored,
        (etag, last_modified): (Option<String>, Option<String>),
    ) -> Result<(), String> {
        // A blob a garbage collection is deleting right now is stored anew once it is done.
        self.lifecycle
            .condemned()
            .wait_until_free(&digest)
            .await
            .map_err(|e| e.to_string())?;
        self.blobs
            .put_file(file, &digest, size, self.settings.max_size)
            .await
            .map_err(|e| format!("storing it: {e}"))?;
        let record = SourceRecord {
            url: url.to_string(),
            digest,
            size,
            fetched_at: self.clock.now(),
            expires_at: self.expiry(),
            etag,
            last_modified,
        };
        self.write_record(&key(url), &record).await
    }

    /// The store the records are in.
    pub(crate) fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// What the record of `url` (normalized) names, when its blob is there, however old (the
    /// Maven cache: a repository's files do not change); its life is extended.
    pub(crate) async fn recorded(&self, url: &Url) -> Result<Option<Stored>, ApiError> {
        let key = key(url);
        let Some(record) = self.record(&key).await? else {
            return Ok(None);
        };
        self.extend(&key, &record).await;
        Ok(Some((record.digest, record.size)))
    }

    /// Keeps the verified local `file` fetched from `url` (normalized) by another fetcher (a
    /// Maven resolution): stored as its blob, recorded as a source.
    pub(crate) async fn keep(
        &self,
        url: &Url,
        file: &std::path::Path,
        digest: Digest,
        size: u64,
    ) -> Result<(), String> {
        self.store_file(url, file, (digest, size), (None, None))
            .await
    }
}
