//! Downloading one file over HTTP: retries with backoff, resume with `Range`, hashing while
//! writing to a temporary name, verification, fsync and rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStore};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_RANGE, HeaderMap, RANGE};
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

use crate::backoff::{Backoff, Jitter, RetryPolicy};
use crate::cache::Cache;

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    /// What the messages call it: a redacted URL or `bundle <id> entry <name>`.
    pub source: String,
    pub origin: Origin,
    pub dir: PathBuf,
    pub name: String,
    pub sha256: Option<Digest>,
    pub size: Option<u64>,
    /// The most bytes a file of unknown size may have: an origin that announces more is
    /// refused before its body, one that sends more is cut off while it streams.
    pub max_size: Option<u64>,
}

/// Where a job's bytes come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// An HTTP GET with `headers` (a bundle's bearer token, a source's headers), whose values
    /// are marked sensitive and never shown.
    Http {
        url: reqwest::Url,
        headers: HeaderMap,
    },
    /// A WebHDFS `op=OPEN` URL (with `user.name` and `delegation`, never shown), requested
    /// with `client`, which does not follow redirects: the NameNode's redirect is followed here.
    WebHdfs {
        client: reqwest::Client,
        url: reqwest::Url,
        /// The HDFS path, for messages.
        path: String,
    },
    /// An object in S3, GCS or Azure.
    Store {
        store: Arc<dyn ObjectStore>,
        path: object_store::path::Path,
    },
}

impl Job {
    /// `Err` when `bytes` (a length the origin announced, or what arrived) is past
    /// [`Job::max_size`]: no further attempt would do better.
    fn within_limit(&self, bytes: u64) -> Result<(), AttemptError> {
        match self.max_size {
            Some(max) if bytes > max => Err(Permanent(format!(
                "larger than the limit of {max} bytes (at least {bytes} bytes)"
            ))),
            _ => Ok(()),
        }
    }

    pub fn final_path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// A fresh temporary name next to the final one: `.<name>.<random>.sparkstage-tmp`, with the
    /// name cut to 64 bytes so that the whole stays a valid file name. No entry can take such a
    /// name (the server reserves the suffix) and the random part keeps two runs apart.
    pub fn temp_path(&self) -> PathBuf {
        temp_path(&self.dir, &self.name)
    }
}

/// A fresh temporary name in `dir` for the file `name` (see [`Job::temp_path`]); what
/// [`remove_leftovers`] removes.
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    let mut cut = name.len().min(64);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    dir.join(format!(
        ".{}.{:016x}{}",
        &name[..cut],
        rand::random::<u64>(),
        sparkstage_api::bundles::TEMP_SUFFIX
    ))
}

/// A temporary file, removed when this is dropped unless it was moved to its final name.
pub(crate) struct TempFile {
    path: PathBuf,
    moved: bool,
}

impl TempFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, moved: false }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn moved(&mut self) {
        self.moved = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.moved {
            // Synchronous: a drop cannot wait, and this must be done before the run reports.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A verified file at its final name.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    pub size: u64,
    /// Bytes received over the network (more than `size` when attempts restarted).
    pub received: u64,
    pub attempts: u32,
    /// Copied from the node-local cache rather than downloaded.
    pub from_cache: bool,
    /// Why the cache could not be used or filled, when it could not.
    pub cache_warning: Option<String>,
}

/// Why a job failed, for the one line the run prints about it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub source: String,
    pub error: String,
    pub attempts: u32,
}

/// What the transfers share.
#[derive(Clone)]
pub struct Transfer {
    pub client: reqwest::Client,
    pub policy: RetryPolicy,
    pub jitter: Jitter,
    pub deadline: Instant,
    /// The whole run's timeout, for messages.
    pub timeout: Duration,
}

pub(crate) enum AttemptError {
    /// Worth another attempt.
    Transient(String),
    /// Another attempt would fail the same way.
    Permanent(String),
}

use AttemptError::{Permanent, Transient};
use sparkstage_api::error::describe_reqwest;

impl AttemptError {
    fn message(self) -> String {
        match self {
            Transient(m) | Permanent(m) => m,
        }
    }
}

impl Transfer {
    /// Waits before the next attempt after `error`; `Err` with the final message when no
    /// attempt is left or the deadline would pass.
    /// Waits before the next attempt after `error`; an error that says why there is none: the
    /// attempts are used up, or the next one would start after the deadline.
    pub(crate) async fn pause(&self, backoff: &mut Backoff, error: String) -> Result<(), String> {
        let attempts = backoff.attempts();
        let Some(delay) = backoff.next_delay() else {
            return Err(format!("{error} (gave up after {attempts} attempts)"));
        };
        let now = Instant::now();
        if now >= self.deadline {
            return Err(self.deadline_message(&error));
        }
        if now + delay >= self.deadline {
            return Err(format!(
                "{error} (gave up after {attempts} attempts: the next one, in {}, would start \
                 after the deadline of {})",
                humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                humantime::format_duration(self.timeout)
            ));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    pub(crate) fn deadline_message(&self, last: &str) -> String {
        format!(
            "the deadline of {} passed (last error: {last})",
            humantime::format_duration(self.timeout)
        )
    }

    /// Sends `request` within the deadline.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AttemptError> {
        match timeout_at(self.deadline, request.send()).await {
            Err(_) => Err(Permanent(self.deadline_message("request did not finish"))),
            // A redirect loop or a request that cannot be built fails the same way again.
            Ok(Err(e)) if e.is_redirect() || e.is_builder() => Err(Permanent(describe_reqwest(&e))),
            Ok(Err(e)) => Err(Transient(describe_reqwest(&e))),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Fetches `job` into its final name, verified, through `cache` when there is one and the
    /// digest is known. Never leaves a partial file there.
    pub async fn fetch(&self, job: &Job, cache: Option<&Cache>) -> Result<Fetched, Failure> {
        let mut backoff = Backoff::new(self.policy, self.jitter.clone());
        let mut partial = Partial::default();
        let mut from_cache = false;
        let mut cache_warning = None;
        let tmp = job.temp_path();
        // Removes the temporary file however this future ends: an error, or dropped when the
        // run's deadline passes in the middle of a transfer.
        let mut temp = TempFile::new(tmp.clone());
        let cache = cache.zip(job.sha256);
        let result = async {
            // create_new: a name that exists (a leftover, or anything else) is never reused.
            // Opened in place, not on the blocking pool: an open still running there when this
            // future is dropped would create the file after its guard removed it.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
            let mut file = tokio::fs::File::from_std(file);
            // A hit needs no lock. A miss takes the digest's lock, so that one process of the
            // node downloads while the others wait, then looks again: the holder before it may
            // have added the file meanwhile. The lock is held until the file is in the cache.
            let mut lock = None;
            if let Some((cache, digest)) = cache {
                from_cache = self
                    .try_cache(
                        job,
                        cache,
                        &digest,
                        &mut file,
                        &mut partial,
                        &mut cache_warning,
                    )
                    .await?;
                if !from_cache {
                    let held = cache.lock(&digest, self.deadline).await?;
                    from_cache = self
                        .try_cache(
                            job,
                            cache,
                            &digest,
                            &mut file,
                            &mut partial,
                            &mut cache_warning,
                        )
                        .await?;
                    if !from_cache {
                        lock = Some(held);
                    }
                }
            }
            if !from_cache {
                loop {
                    backoff.start_attempt();
                    match self.attempt(job, &mut file, &mut partial).await {
                        Ok(()) => break,
                        Err(Permanent(e)) => return Err(e),
                        Err(Transient(e)) => self.pause(&mut backoff, e).await?,
                    }
                }
            }
            let digest = partial.digest();
            if let Some(size) = job.size
                && size != partial.written
            {
                return Err(format!(
                    "size mismatch: expected {size} bytes, got {}",
                    partial.written
                ));
            }
            if let Some(expected) = job.sha256
                && expected != digest
            {
                return Err(format!(
                    "digest mismatch: expected {expected}, got {digest}; the download was discarded"
                ));
            }
            file.flush().await.map_err(|e| io_message(&tmp, &e))?;
            file.sync_all().await.map_err(|e| io_message(&tmp, &e))?;
            drop(file);
            // In place too, so that the guard knows whether the file moved.
            std::fs::rename(&tmp, job.final_path())
                .map_err(|e| format!("cannot rename into {}: {e}", job.final_path().display()))?;
            temp.moved();
            crate::state::sync_dir(&job.dir);
            if let Some((cache, _)) = cache
                && !from_cache
                && let Err(e) = cache.insert(&digest, &job.final_path()).await
            {
                cache_warning = Some(format!("cannot add the file to the cache: {e}"));
            }
            drop(lock);
            Ok(digest)
        }
        .await;
        match result {
            Ok(digest) => Ok(Fetched {
                digest,
                size: partial.written,
                received: partial.received,
                attempts: backoff.attempts(),
                from_cache,
                cache_warning,
            }),
            Err(error) => {
                drop(temp);
                Err(Failure {
                    source: job.source.clone(),
                    error,
                    attempts: backoff.attempts(),
                })
            }
        }
    }

    /// Fills the temporary file from the cache entry of `digest`, verified; `false` when there
    /// is no entry, or it was corrupt (then it is removed).
    async fn try_cache(
        &self,
        job: &Job,
        cache: &Cache,
        digest: &Digest,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
        warning: &mut Option<String>,
    ) -> Result<bool, String> {
        let Some(entry) = cache.open_entry(digest).await else {
            return Ok(false);
        };
        if copy_entry(job, entry, file, partial).await? {
            return Ok(true);
        }
        cache.remove(digest).await;
        *warning = Some(format!(
            "the cache entry {} was corrupt; removed it and downloaded the file",
            cache.entry_path(digest).display()
        ));
        partial.restart(file).await.map_err(|e| e.message())?;
        Ok(false)
    }

    async fn attempt(
        &self,
        job: &Job,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
    ) -> Result<(), AttemptError> {
        match &job.origin {
            Origin::Http { url, headers } => {
                self.attempt_http(job, url, headers, file, partial).await
            }
            Origin::WebHdfs { client, url, path } => {
                self.attempt_webhdfs(job, client, url, path, file, partial)
                    .await
            }
            Origin::Store { store, path } => {
                self.attempt_store(job, store.as_ref(), path, file, partial)
                    .await
            }
        }
    }

    /// One object-store read, continuing `partial` from its end.
    async fn attempt_store(
        &self,
        job: &Job,
        store: &dyn ObjectStore,
        path: &object_store::path::Path,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
    ) -> Result<(), AttemptError> {
        let options = GetOptions {
            range: (partial.written > 0).then_some(GetRange::Offset(partial.written)),
            ..GetOptions::default()
        };
        let result = match timeout_at(self.deadline, store.get_opts(path, options)).await {
            Err(_) => return Err(Permanent(self.deadline_message("request did not finish"))),
            Ok(Err(object_store::Error::NotFound { .. })) => {
                return Err(Permanent("no such object".into()));
            }
            // object_store already retried what it considers transient.
            Ok(Err(e)) => return Err(Permanent(e.to_string())),
            Ok(Ok(result)) => result,
        };
        if result.range.start != partial.written {
            partial.restart(file).await?;
            return Err(Transient("the store answered a different range".into()));
        }
        let total = result.meta.size;
        job.within_limit(total)?;
        let mut stream = result.into_stream();
        loop {
            let chunk = match timeout_at(self.deadline, stream.next()).await {
                Err(_) => return Err(Permanent(self.deadline_message("body still arriving"))),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Transient(format!(
                        "the body broke off after {} bytes: {e}",
                        partial.written
                    )));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            partial.append(job, file, &chunk).await?;
        }
        if partial.written < total {
            return Err(Transient(format!(
                "truncated body: {} of {total} bytes",
                partial.written
            )));
        }
        Ok(())
    }

    /// One WebHDFS `OPEN`: the NameNode, then the DataNode it redirects to; continues `partial`
    /// with `offset=<bytes so far>`.
    async fn attempt_webhdfs(
        &self,
        job: &Job,
        client: &reqwest::Client,
        url: &reqwest::Url,
        path: &str,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
    ) -> Result<(), AttemptError> {
        let offset = partial.written;
        let mut target = if offset > 0 {
            crate::webhdfs::with_param(url, "offset", &offset.to_string())
        } else {
            url.clone()
        };
        let mut response = self.send(client.get(target.clone())).await?;
        // The NameNode redirects to a DataNode; HttpFS answers directly.
        for _ in 0..3 {
            if !response.status().is_redirection() {
                break;
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Permanent(format!(
                        "{path}: HTTP {} without a Location",
                        response.status()
                    ))
                })?
                .to_owned();
            target = crate::webhdfs::follow(&target, &location, offset).map_err(Permanent)?;
            response = self.send(client.get(target.clone())).await?;
        }
        let status = response.status();
        if !status.is_success() {
            let body = timeout_at(
                self.deadline,
                sparkstage_api::error::error_body_bytes(response),
            )
            .await
            .unwrap_or_default();
            let refusal = crate::webhdfs::refusal(status, &body, path);
            return Err(if refusal.transient {
                Transient(refusal.message)
            } else {
                Permanent(refusal.message)
            });
        }
        let length = response.content_length().map(|l| l + offset);
        if offset == 0 {
            partial.total = length;
        } else if let (Some(total), Some(length)) = (partial.total, length)
            && total != length
        {
            // A DataNode that ignored `offset` sends the file from its start.
            partial.restart(file).await?;
            return Err(Transient(format!(
                "the DataNode did not honour offset={offset} ({} bytes for a file of {total})",
                length - offset
            )));
        }
        self.copy_body(job, response, length, file, partial).await
    }

    /// One HTTP request: continues `partial` with a `Range` request when the origin allows it,
    /// otherwise starts over.
    async fn attempt_http(
        &self,
        job: &Job,
        url: &reqwest::Url,
        headers: &HeaderMap,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
    ) -> Result<(), AttemptError> {
        let mut request = self.client.get(url.clone()).headers(headers.clone());
        let resuming = partial.written > 0 && partial.resumable;
        if resuming {
            request = request.header(RANGE, format!("bytes={}-", partial.written));
        }
        let response = self.send(request).await?;
        let status = response.status();
        match status {
            StatusCode::PARTIAL_CONTENT if resuming => {
                let expected = format!("bytes {}-", partial.written);
                let continues = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&expected));
                if !continues {
                    partial.restart(file).await?;
                    return Err(Transient("the origin answered a different range".into()));
                }
            }
            StatusCode::OK => {
                if partial.written > 0 {
                    partial.restart(file).await?;
                }
                partial.resumable = response
                    .headers()
                    .get(ACCEPT_RANGES)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"bytes"));
            }
            StatusCode::RANGE_NOT_SATISFIABLE if resuming => {
                partial.restart(file).await?;
                partial.resumable = false;
                return Err(Transient("the origin refused to resume (416)".into()));
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error() =>
            {
                return Err(Transient(format!(
                    "HTTP {s}{}",
                    error_detail(response).await
                )));
            }
            s => {
                return Err(Permanent(format!(
                    "HTTP {s}{}",
                    error_detail(response).await
                )));
            }
        }
        let length = response.content_length().map(|l| l + partial.written);
        self.copy_body(job, response, length, file, partial).await
    }

    /// Streams a response body onto `partial`; a body that ends before `length` (the whole
    /// file's size, when the origin said it) is truncated.
    async fn copy_body(
        &self,
        job: &Job,
        mut response: reqwest::Response,
        length: Option<u64>,
        file: &mut tokio::fs::File,
        partial: &mut Partial,
    ) -> Result<(), AttemptError> {
        if let Some(length) = length {
            job.within_limit(length)?;
        }
        loop {
            let chunk = match timeout_at(self.deadline, response.chunk()).await {
                Err(_) => return Err(Permanent(self.deadline_message("body still arriving"))),
                Ok(Err(e)) => {
                    return Err(Transient(format!(
                        "the body broke off after {} bytes: {}",
                        partial.written,
                        describe_reqwest(&e)
                    )));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            partial.append(job, file, &chunk).await?;
        }
        if let Some(length) = length
            && partial.written < length
        {
            return Err(Transient(format!(
                "truncated body: {} of {length} bytes",
                partial.written
            )));
        }
        Ok(())
    }
}

/// The bytes of the temporary file so far, and their hash.
#[derive(Default)]
struct Partial {
    hasher: Sha256,
    written: u64,
    received: u64,
    resumable: bool,
    /// The whole file's length, as the first response gave it.
    total: Option<u64>,
}

impl Partial {
    fn digest(&self) -> Digest {
        Digest::from_bytes(self.hasher.clone().finalize().into())
    }

    /// Writes and hashes `chunk`.
    async fn append(
        &mut self,
        job: &Job,
        file: &mut tokio::fs::File,
        chunk: &[u8],
    ) -> Result<(), AttemptError> {
        file.write_all(chunk)
            .await
            .map_err(|e| Permanent(io_message(&job.temp_path(), &e)))?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        self.received += chunk.len() as u64;
        if let Some(size) = job.size
            && self.written > size
        {
            return Err(Permanent(format!(
                "size mismatch: expected {size} bytes, got more"
            )));
        }
        job.within_limit(self.written)
    }

    async fn restart(&mut self, file: &mut tokio::fs::File) -> Result<(), AttemptError> {
        use tokio::io::AsyncSeekExt;
        let reset = async {
            file.flush().await?;
            file.set_len(0).await?;
            file.seek(std::io::SeekFrom::Start(0)).await?;
            Ok::<_, std::io::Error>(())
        };
        reset
            .await
            .map_err(|e| Permanent(format!("cannot truncate the temporary file: {e}")))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }
}

/// Copies a cache entry into the temporary file, hashing it; `Ok(false)` when it does not match
/// the job's digest and size (a corrupt entry).
async fn copy_entry(
    job: &Job,
    mut entry: tokio::fs::File,
    file: &mut tokio::fs::File,
    partial: &mut Partial,
) -> Result<bool, String> {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = entry
            .read(&mut buffer)
            .await
            .map_err(|e| format!("cannot read the cache entry: {e}"))?;
        if n == 0 {
            break;
        }
        if job
            .size
            .is_some_and(|size| partial.written + n as u64 > size)
        {
            return Ok(false);
        }
        partial
            .append(job, file, &buffer[..n])
            .await
            .map_err(|e| e.message())?;
    }
    partial.received = 0;
    Ok(job.size.is_none_or(|size| size == partial.written) && job.sha256 == Some(partial.digest()))
}

/// Removes what a killed run left in `dir`: files under temporary names (which no entry can
/// have). A pod runs one init container at a time, so none of them is being written.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.ends_with(sparkstage_api::bundles::TEMP_SUFFIX))
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

fn io_message(path: &Path, e: &std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// `": <message>"` from a JSON error body of the staging server, or nothing.
pub(crate) async fn error_detail(response: reqwest::Response) -> String {
    match sparkstage_api::error::error_answer(response).await {
        Some((code, message)) => format!(" ({code}): {message}"),
        None => String::new(),
    }
}
