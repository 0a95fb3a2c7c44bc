//! Maven repositories: `http(s)://` (credentials in the URL or a header) and `file://`, read
//! through a verified local cache that concurrent resolutions share without a global lock.
//!
//! - Small files (POMs, `maven-metadata.xml`) are read into memory, cut off while streaming past
//!   [`Limits::max_file_size`]; artifacts (jars) are streamed to the cache and hashed on the way,
//!   cut off past [`Limits::max_artifact_size`]. Checksum files are read up to
//!   [`CHECKSUM_FILE_MAX`] bytes and must hold a hex digest.
//! - A repository that cannot be connected to answers [`RepoError::Unreachable`], so that a
//!   resolution can stop asking it.
//! - Where the repository publishes `.sha256` or `.sha1` next to a file, the file is checked
//!   against it (sha256 preferred) and a mismatch is an error; where it publishes none (Debian's
//!   repository), the file is taken as it is.
//! - A cached file is written to a unique temporary name and renamed into place, so readers see
//!   whole files only and two resolutions fetching the same file at once both succeed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use sparkstage_api::error::describe_reqwest;
use sparkstage_api::shown::url as shown;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt};

use crate::limits::{CHECKSUM_FILE_MAX, Limits};
use crate::shared::SharedCache;

/// One remote or local repository.
#[derive(Clone)]
pub struct Repository {
    /// The base URL, ending in `/`.
    base: url::Url,
    /// An `Authorization` header value, when given; never printed.
    authorization: Option<String>,
    /// The credentials came in the URL (a request's own): nothing is shared.
    credentials_in_url: bool,
    /// The cache directory of this repository.
    cache: PathBuf,
    /// The cache the server's replicas share, under the local one.
    shared: Option<Arc<dyn SharedCache>>,
    /// Only the cache is read; what it lacks is missing.
    offline: bool,
    limits: Limits,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("url", &self.url())
            .field("cache", &self.cache)
            .field("shared", &self.shared().is_some())
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}: not a repository URL (http://, https:// or file://)")]
    BadUrl(String),
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url}: larger than {limit} bytes, the limit for {what}{flag}")]
    TooLarge {
        url: String,
        limit: u64,
        what: &'static str,
        flag: &'static str,
    },
    #[error("{url}: not a checksum file (expected a hex digest, found {found:?})")]
    BadChecksumFile { url: String, found: String },
    #[error("{url}: checksum mismatch: the repository says {expected}, the file is {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cache {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
}

/// What fetching a file found.
pub enum Fetched {
    Found(Vec<u8>),
    Missing,
}

impl Repository {
    /// `url` with optional credentials (`https://user:pass@host/...` becomes basic auth);
    /// `cache_root` is shared by all repositories (each gets a directory named after its URL).
    pub fn new(
        url: &str,
        authorization: Option<String>,
        cache_root: &Path,
    ) -> Result<Self, RepoError> {
        let mut base = url::Url::parse(url).map_err(|_| RepoError::BadUrl(url.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https" | "file") {
            return Err(RepoError::BadUrl(url.to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut authorization = authorization;
        let credentials_in_url = !base.username().is_empty() || base.password().is_some();
        if authorization.is_none() && !base.username().is_empty() {
            use base64::Engine as _;
            let user = percent(base.username());
            let pass = base.password().map(percent).unwrap_or_default();
            authorization = Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            ));
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let id = hex::encode(&Sha256::digest(base.as_str().as_bytes())[..8]);
        Ok(Self {
            base,
            authorization,
            credentials_in_url,
            cache: cache_root.join(id),
            shared: None,
            offline: false,
            limits: Limits::default(),
        })
    }

    /// This repository with the `Authorization` value `credentials` give for its URL, unless
    /// the URL carried its own credentials.
    pub fn with_credentials(mut self, credentials: &crate::credentials::Credentials) -> Self {
        if self.authorization.is_none() {
            self.authorization = credentials.authorization(&self.base).map(str::to_owned);
        }
        self
    }

    /// This repository with `limits` on the files it reads.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// This repository with `shared` under its local cache ([`crate::shared`]): used unless
    /// the repository is a local directory or its URL carried its own credentials.
    pub fn with_shared(mut self, shared: Option<Arc<dyn SharedCache>>) -> Self {
        self.shared = shared;
        self
    }

    /// The shared cache, when this repository may use it.
    fn shared(&self) -> Option<&dyn SharedCache> {
        match self.base.scheme() {
            "http" | "https" if !self.credentials_in_url => self.shared.as_deref(),
            _ => None,
        }
    }

    /// The small file at `path` from the shared cache, copied into the local one.
    async fn shared_file(&self, path: &str, cached: &Path) -> Option<Vec<u8>> {
        let shared = self.shared()?;
        let url = self.file_url(path).ok()?;
        let bytes = shared.file(&url, self.limits.max_file_size).await?;
        // The local copy only saves the next read a request; without it, the store answers.
        let _ = write_atomically(cached, &bytes).await;
        Some(bytes)
    }

    /// This repository, read from the cache only when `offline`.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    pub fn url(&self) -> String {
        shown(&self.base)
    }

    fn file_url(&self, path: &str) -> Result<url::Url, RepoError> {
        self.base
            .join(path)
            .map_err(|_| RepoError::BadUrl(format!("{}{path}", self.url())))
    }

    fn cached(&self, path: &str) -> PathBuf {
        self.cache.join(path)
    }

    /// Reads a small file (a POM, metadata, a checksum) from the cache or the repository.
    pub async fn fetch(&self, http: &reqwest::Client, path: &str) -> Result<Fetched, RepoError> {
        let cached = self.cached(path);
        if let Ok(bytes) = tokio::fs::read(&cached).await {
            return Ok(Fetched::Found(bytes));
        }
        if let Some(bytes) = self.shared_file(path, &cached).await {
            return Ok(Fetched::Found(bytes));
        }
        self.download_small(http, path, &cached).await
    }

    /// Like [`Repository::fetch`], but asks the repository first (for `maven-metadata.xml`,
    /// which changes); the cached copy answers when the repository cannot, and offline.
    pub async fn fetch_fresh(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<Fetched, RepoError> {
        let cached = self.cached(path);
        match self.download_small(http, path, &cached).await {
            Ok(Fetched::Found(bytes)) => Ok(Fetched::Found(bytes)),
            other => match tokio::fs::read(&cached).await {
                Ok(bytes) => Ok(Fetched::Found(bytes)),
                Err(_) => match self.shared_file(path, &cached).await {
                    Some(bytes) => Ok(Fetched::Found(bytes)),
                    None => other,
                },
            },
        }
    }

    /// Downloads a small file and its checksums (concurrently), verifies and caches it.
    async fn download_small(
        &self,
        http: &reqwest::Client,
        path: &str,
        cached: &Path,
    ) -> Result<Fetched, RepoError> {
        let max = (
            self.limits.max_file_size,
            "a POM or metadata file",
            SMALL_FILE_FLAG,
        );
        let (body, sums) = tokio::join!(self.get(http, path, max), self.checksums(http, path));
        let Some(bytes) = body? else {
            return Ok(Fetched::Missing);
        };
        let (sha256, sha1) = (
            hex::encode(Sha256::digest(&bytes)),
            hex::encode(Sha1::digest(&bytes)),
        );
        self.check(path, &sums?, &sha256, &sha1)?;
        write_atomically(cached, &bytes).await?;
        if let Some(shared) = self.shared() {
            shared.keep_file(&self.file_url(path)?, &bytes).await;
        }
        Ok(Fetched::Found(bytes))
    }

    /// The repository's `.sha256` and `.sha1` for `path`, fetched concurrently.
    async fn checksums(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<(Option<String>, Option<String>), RepoError> {
        let (sha256_path, sha1_path) = (format!("{path}.sha256"), format!("{path}.sha1"));
        let max = (CHECKSUM_FILE_MAX, "a checksum file", "");
        let (sha256, sha1) = tokio::join!(
            self.get(http, &sha256_path, max),
            self.get(http, &sha1_path, max)
        );
        let value = |path: &str, file: Option<Vec<u8>>, hex_len: usize| {
            file.map(|bytes| {
                checksum_value(&bytes, hex_len).ok_or_else(|| RepoError::BadChecksumFile {
                    url: format!("{}{path}", self.url()),
                    found: sparkstage_api::shown::outside_bytes(&bytes, 80),
                })
            })
            .transpose()
        };
        Ok((
            value(&sha256_path, sha256?, 64)?,
            value(&sha1_path, sha1?, 40)?,
        ))
    }

    /// Checks a file's digests against the repository's checksums (sha256 preferred).
    fn check(
        &self,
        path: &str,
        sums: &(Option<String>, Option<String>),
        sha256: &str,
        sha1: &str,
    ) -> Result<(), RepoError> {
        let (expected, actual) = match sums {
            (Some(expected), _) => (expected, sha256),
            (None, Some(expected)) => (expected, sha1),
            (None, None) => return Ok(()),
        };
        if expected.eq_ignore_ascii_case(actual) {
            return Ok(());
        }
        Err(RepoError::Checksum {
            url: format!("{}{path}", self.url()),
            expected: expected.clone(),
            actual: actual.to_owned(),
        })
    }

    /// The bytes at `path`, `None` on 404 or a missing file; a body larger than `max.0` bytes
    /// is cut off while it streams (`max.1` says what it is, `max.2` which flag raises it).
    async fn get(
        &self,
        http: &reqwest::Client,
        path: &str,
        max: (u64, &'static str, &'static str),
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let (limit, what, flag) = max;
        if self.offline {
            return Ok(None);
        }
        let url = self.file_url(path)?;
        let too_large = || RepoError::TooLarge {
            url: shown(&url),
            limit,
            what,
            flag,
        };
        let fail = |message: String| RepoError::Fetch {
            url: shown(&url),
            message,
        };
        if url.scheme() == "file" {
            let file = url
                .to_file_path()
                .map_err(|_| RepoError::BadUrl(url.to_string()))?;
            let file = match tokio::fs::File::open(&file).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(fail(e.to_string())),
            };
            let mut bytes = Vec::new();
            file.take(limit + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| fail(e.to_string()))?;
            return match bytes.len() as u64 > limit {
                true => Err(too_large()),
                false => Ok(Some(bytes)),
            };
        }
        let mut request = http.get(url.clone());
        if let Some(auth) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let response = request.send().await.map_err(|e| self.failed(&url, &e))?;
        match response.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE => return Ok(None),
            s => return Err(fail(format!("HTTP {s}"))),
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.failed(&url, &e))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// A request that failed: [`RepoError::Unreachable`] when no connection could be made.
    fn failed(&self, url: &url::Url, e: &reqwest::Error) -> RepoError {
        let (url, message) = (shown(url), describe_reqwest(e));
        if e.is_connect() {
            RepoError::Unreachable { url, message }
        } else {
            RepoError::Fetch { url, message }
        }
    }

    /// Downloads an artifact into the cache (streaming, verified), returning where it is
    /// kept; `None` when the repository does not have it. With a shared cache, an artifact it
    /// holds is not downloaded, and one downloaded goes there rather than into the local cache.
    pub async fn artifact(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<Option<CachedArtifact>, RepoError> {
        let cached = self.cached(path);
        if tokio::fs::try_exists(&cached).await.unwrap_or(false) {
            let hashed = cached.clone();
            let hashes = tokio::task::spawn_blocking(move || hash_file(&hashed))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map_err(|source| RepoError::Cache {
                    path: cached.display().to_string(),
                    source,
                })?;
            return Ok(Some(CachedArtifact {
                path: Some(cached),
                sha256: hashes.sha256,
                size: hashes.size,
            }));
        }
        let url = self.file_url(path)?;
        if let Some(shared) = self.shared()
            && let Some((digest, size)) = shared.artifact(&url).await
        {
            return Ok(Some(CachedArtifact {
                path: None,
                sha256: digest.hex(),
                size,
            }));
        }
        if self.offline {
            return Ok(None);
        }
        let fail = |message: String| RepoError::Fetch {
            url: shown(&url),
            message,
        };
        let tmp = temp_name(&cached);
        if let Some(parent) = cached.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| RepoError::Cache {
                    path: parent.display().to_string(),
                    source,
                })?;
        }
        let sums = self.checksums(http, path);
        let download = async {
            if url.scheme() == "file" {
                let file = url
                    .to_file_path()
                    .map_err(|_| RepoError::BadUrl(url.to_string()))?;
                let Ok(metadata) = tokio::fs::metadata(&file).await else {
                    return Ok(None);
                };
                if metadata.len() > self.limits.max_artifact_size {
                    return Err(self.artifact_too_large(&url));
                }
                tokio::fs::copy(&file, &tmp)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let hashed = tmp.clone();
                let digests = tokio::task::spawn_blocking(move || hash_file(&hashed))
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Some(digests))
            } else {
                let mut request = http.get(url.clone());
                if let Some(auth) = &self.authorization {
                    request = request.header(reqwest::header::AUTHORIZATION, auth);
                }
                let response = request.send().await.map_err(|e| self.failed(&url, &e))?;
                match response.status() {
                    s if s.is_success() => {}
                    reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE => return Ok(None),
                    s => return Err(fail(format!("HTTP {s}"))),
                }
                let max = self.limits.max_artifact_size;
                if response.content_length().is_some_and(|n| n > max) {
                    return Err(self.artifact_too_large(&url));
                }
                let mut file =
                    tokio::fs::File::create(&tmp)
                        .await
                        .map_err(|source| RepoError::Cache {
                            path: tmp.display().to_string(),
                            source,
                        })?;
                let (mut h256, mut h1) = (Sha256::new(), Sha1::new());
                let mut size = 0u64;
                let mut body = response.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tokio::fs::remove_file(&tmp).await;
                            return Err(self.failed(&url, &e));
                        }
                    };
                    if size + chunk.len() as u64 > max {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(self.artifact_too_large(&url));
                    }
                    h256.update(&chunk);
                    h1.update(&chunk);
                    size += chunk.len() as u64;
                    if let Err(source) = file.write_all(&chunk).await {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(RepoError::Cache {
                            path: tmp.display().to_string(),
                            source,
                        });
                    }
                }
                file.flush().await.map_err(|source| RepoError::Cache {
                    path: tmp.display().to_string(),
                    source,
                })?;
                Ok(Some(Hashes {
                    sha256: hex::encode(h256.finalize()),
                    sha1: hex::encode(h1.finalize()),
                    size,
                }))
            }
        };
        let (downloaded, sums) = tokio::join!(download, sums);
        let Some(hashes) = downloaded.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?
        else {
            return Ok(None);
        };
        if let Err(e) = sums.and_then(|sums| self.check(path, &sums, &hashes.sha256, &hashes.sha1))
        {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        if let Some(shared) = self.shared()
            && let Ok(digest) = format!("sha256:{}", hashes.sha256).parse()
            && shared.keep_artifact(&url, &tmp, digest, hashes.size).await
        {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Ok(Some(CachedArtifact {
                path: None,
                sha256: hashes.sha256,
                size: hashes.size,
            }));
        }
        tokio::fs::rename(&tmp, &cached)
            .await
            .map_err(|source| RepoError::Cache {
                path: cached.display().to_string(),
                source,
            })?;
        Ok(Some(CachedArtifact {
            path: Some(cached),
            sha256: hashes.sha256,
            size: hashes.size,
        }))
    }
}

impl Repository {
    fn artifact_too_large(&self, url: &url::Url) -> RepoError {
        RepoError::TooLarge {
            url: shown(url),
            limit: self.limits.max_artifact_size,
            what: "an artifact",
            flag: " (--maven-max-artifact-size)",
        }
    }
}

/// The flag that raises [`Limits::max_file_size`], for messages.
const SMALL_FILE_FLAG: &str = " (--maven-max-file-size)";

/// A verified artifact, with its sha256 (hex) and size.
#[derive(Debug, Clone)]
pub struct CachedArtifact {
    /// Where it is in the local cache; `None` when the shared cache keeps it instead.
    pub path: Option<PathBuf>,
    pub sha256: String,
    pub size: u64,
}

/// A file's digests and size.
struct Hashes {
    sha256: String,
    sha1: String,
    size: u64,
}

/// sha256, sha1 and size of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<Hashes> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let (mut h256, mut h1) = (Sha256::new(), Sha1::new());
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h256.update(&buffer[..n]);
        h1.update(&buffer[..n]);
    }
    Ok(Hashes {
        sha256: hex::encode(h256.finalize()),
        sha1: hex::encode(h1.finalize()),
        size,
    })
}

/// A checksum file's value: its first word (some files add the file name after it), which must
/// be `hex_len` hex digits; `None` when it is not.
fn checksum_value(file: &[u8], hex_len: usize) -> Option<String> {
    let text = std::str::from_utf8(file).ok()?;
    let value = text.split_whitespace().next()?;
    (value.len() == hex_len && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_owned())
}

/// A user name or password from a URL, percent-decoded.
fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn temp_name(path: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()))
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let cache_error = |source| RepoError::Cache {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(cache_error)?;
    }
    let tmp = temp_name(path);
    tokio::fs::write(&tmp, bytes).await.map_err(cache_error)?;
    tokio::fs::rename(&tmp, path).await.map_err(cache_error)
}

/// The versions a `maven-metadata.xml` lists.
pub fn metadata_versions(xml: &str) -> Result<Vec<String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    Ok(doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "version")
        .filter(|n| {
            n.parent()
                .is_some_and(|p| p.tag_name().name() == "versions")
        })
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect())
}

/// The timestamped version (`1.0-20240102.030405-2`) of a SNAPSHOT's `extension` and
/// `classifier` that a version directory's `maven-metadata.xml` names: its `snapshotVersions`
/// entry, else `<snapshot>`'s timestamp and build number on `base_version` (Maven 2's
/// metadata). `None` when it names no timestamped build (a non-unique snapshot).
pub fn snapshot_version(
    xml: &str,
    base_version: &str,
    extension: &str,
    classifier: Option<&str>,
) -> Result<Option<String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let child_text = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let Some(versioning) = doc
        .root_element()
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "versioning")
    else {
        return Ok(None);
    };
    let listed = versioning
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "snapshotVersion")
        .find(|n| {
            child_text(*n, "extension").as_deref() == Some(extension)
                && child_text(*n, "classifier").as_deref() == classifier
        })
        .and_then(|n| child_text(n, "value"));
    if listed.is_some() {
        return Ok(listed);
    }
    let Some(snapshot) = versioning
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "snapshot")
    else {
        return Ok(None);
    };
    let base = base_version
        .strip_suffix("-SNAPSHOT")
        .unwrap_or(base_version);
    Ok(
        match (
            child_text(snapshot, "timestamp"),
            child_text(snapshot, "buildNumber"),
        ) {
            (Some(timestamp), Some(build)) => Some(format!("{base}-{timestamp}-{build}")),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;

    #[test]
    fn metadata_and_checksums() {
        let xml = r#"<metadata><groupId>g</groupId><artifactId>a</artifactId><versioning>
            <latest>2.0</latest><release>2.0</release>
            <versions><version>1.0</version><version> 1.5 </version><version>2.0</version></versions>
            </versioning></metadata>"#;
        assert_eq!(
            metadata_versions(xml).expect("parses"),
            ["1.0", "1.5", "2.0"]
        );
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(
            checksum_value(format!("{sha1}  a-1.0.jar\n").as_bytes(), 40).as_deref(),
            Some(sha1)
        );
        assert_eq!(checksum_value(sha1.as_bytes(), 64), None);
        assert_eq!(checksum_value(b"<html>not found</html>", 40), None);
        assert_eq!(checksum_value(b"", 40), None);
    }

    #[test]
    fn snapshot_metadata_names_the_timestamped_build() {
        let xml = r#"<metadata modelVersion="1.1.0"><groupId>g</groupId><artifactId>a</artifactId>
            <version>1.0-SNAPSHOT</version><versioning>
            <snapshot><timestamp>20240102.030405</timestamp><buildNumber>2</buildNumber></snapshot>
            <snapshotVersions>
              <snapshotVersion><extension>jar</extension><value>1.0-20240102.030405-2</value>
              </snapshotVersion>
              <snapshotVersion><classifier>sources</classifier><extension>jar</extension>
                <value>1.0-20240101.000000-1</value></snapshotVersion>
            </snapshotVersions></versioning></metadata>"#;
        let version = |ext, classifier| {
            snapshot_version(xml, "1.0-SNAPSHOT", ext, classifier).expect("parses")
        };
        assert_eq!(
            version("jar", None).as_deref(),
            Some("1.0-20240102.030405-2")
        );
        assert_eq!(
            version("jar", Some("sources")).as_deref(),
            Some("1.0-20240101.000000-1")
        );
        // Not listed: <snapshot>'s build.
        assert_eq!(
            version("pom", None).as_deref(),
            Some("1.0-20240102.030405-2")
        );
        let maven2 = "<metadata><versioning><snapshot><timestamp>20200101.000000</timestamp>\
                      <buildNumber>7</buildNumber></snapshot></versioning></metadata>";
        assert_eq!(
            snapshot_version(maven2, "2.0-SNAPSHOT", "jar", None)
                .expect("parses")
                .as_deref(),
            Some("2.0-20200101.000000-7")
        );
        // Non-unique snapshots (`<localCopy>`) name no build.
        let local = "<metadata><versioning><snapshot><localCopy>true</localCopy></snapshot>\
                     </versioning></metadata>";
        assert_eq!(
            snapshot_version(local, "1.0-SNAPSHOT", "jar", None),
            Ok(None)
        );
        assert!(snapshot_version("<metadata", "1.0-SNAPSHOT", "jar", None).is_err());
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth_and_are_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::new(
            "https://alice:s3cret@repo.example.com/maven2",
            None,
            dir.path(),
        )
        .expect("repo");
        assert_eq!(repo.url(), "https://repo.example.com/maven2/");
        assert_eq!(
            repo.authorization.as_deref(),
            Some("Basic YWxpY2U6czNjcmV0")
        );
        assert!(Repository::new("ftp://h/r", None, dir.path()).is_err());
    }

    /// A shared cache that has nothing and keeps nothing.
    struct Nothing;

    impl SharedCache for Nothing {
        fn file<'a>(&'a self, _: &'a url::Url, _: u64) -> BoxFuture<'a, Option<Vec<u8>>> {
            Box::pin(async { None })
        }
        fn keep_file<'a>(&'a self, _: &'a url::Url, _: &'a [u8]) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
        fn artifact<'a>(
            &'a self,
            _: &'a url::Url,
        ) -> BoxFuture<'a, Option<(sparkstage_api::Digest, u64)>> {
            Box::pin(async { None })
        }
        fn keep_artifact<'a>(
            &'a self,
            _: &'a url::Url,
            _: &'a Path,
            _: sparkstage_api::Digest,
            _: u64,
        ) -> BoxFuture<'a, bool> {
            Box::pin(async { false })
        }
    }

    #[test]
    fn only_repositories_on_the_servers_own_credentials_are_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared: Arc<dyn SharedCache> = Arc::new(Nothing);
        let repo = |url: &str| {
            Repository::new(url, None, dir.path())
                .expect("repo")
                .with_shared(Some(Arc::clone(&shared)))
        };
        assert!(repo("https://repo.example.com/maven2").shared().is_some());
        let credentials =
            crate::credentials::Credentials::parse("https://nexus.example/ Bearer server-own\n")
                .expect("credentials");
        assert!(
            repo("https://nexus.example/maven")
                .with_credentials(&credentials)
                .shared()
                .is_some()
        );
        // A request's own credentials, or a local directory: never shared.
        assert!(
            repo("https://alice:s3cret@repo.example.com/m2")
                .shared()
                .is_none()
        );
        assert!(repo("https://alice@repo.example.com/m2").shared().is_none());
        assert!(repo("file:///srv/maven").shared().is_none());
    }
}
