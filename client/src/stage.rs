//! Staging local files on `sparkstage-server`: hash them (in parallel, streaming, remembered by
//! path, size and mtime), ask the server which digests it lacks in one call, upload only those
//! (with progress), and create the bundle.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;
use sparkstage_api::blobs::{FindMissingRequest, FindMissingResponse, MISSING_PATH, blob_path};
use sparkstage_api::bundles::{
    BundleEntry, BundleSummary, CreateBundleRequest, CreateBundleResponse, EntryKind,
    ListBundlesResponse, MissingBlobsBody, Owner, bundle_path,
};
use sparkstage_api::lifecycle::{GcRequest, GcResponse};
use tokio::io::AsyncReadExt as _;

use crate::progress::Progress;
use sparkstage_api::error::describe_reqwest;

/// A file to stage: where it is, its name in the bundle, its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFile {
    pub path: PathBuf,
    pub name: String,
    pub kind: EntryKind,
}

/// The bundle staging creates, besides the files: entries the server already stores (jars it
/// resolved), the owner and the lifetime.
#[derive(Debug, Clone, Default)]
pub struct BundleSpec<'a> {
    pub stored: &'a [BundleEntry],
    /// Entries the server fetches from their origin.
    pub sources: Vec<sparkstage_api::bundles::SourceEntry>,
    pub owner: Option<Owner>,
    pub ttl: Option<String>,
}

/// Remote sources (`url[#sha256=<hex>]`, as the init container takes them) as source entries of
/// a bundle: the server fetches them, once for the cluster. A `.jar` goes to the jars directory,
/// as the init container would put it.
pub fn source_entries(remote: &[String]) -> Result<Vec<sparkstage_api::bundles::SourceEntry>> {
    use sparkstage_api::bundles::{EntryKind, SourceEntry, TargetDir};
    remote
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let source = sparkstage_injection::command::Source::parse(index, text)?;
            let kind = match sparkstage_injection::layout::target_of(&source.name) {
                TargetDir::Jars => EntryKind::Jar,
                TargetDir::Files => EntryKind::File,
            };
            Ok(SourceEntry {
                name: Some(source.name),
                kind,
                source: source.url.to_string(),
                digest: source.sha256,
            })
        })
        .collect()
}

/// What staging did.
#[derive(Debug, Clone)]
pub struct Staged {
    pub bundle: CreateBundleResponse,
    pub entries: Vec<BundleEntry>,
    /// Files hashed (not found in the digest cache).
    pub hashed: usize,
    pub uploaded_files: usize,
    pub uploaded_bytes: u64,
    pub elapsed: Duration,
}

/// The staging server's API, as the client uses it.
#[derive(Clone)]
pub struct ServerClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// `GET /v1/info`'s answer, asked once: what a server offers does not change during a
    /// command (which may ask for several applications and decisions).
    info: std::sync::Arc<tokio::sync::OnceCell<sparkstage_api::info::ServerInfo>>,
}

impl ServerClient {
    /// `token` is the upload token, when the server has one.
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            info: Default::default(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error with the server's message.
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "{what}: cannot reach the staging server {}: {}",
                self.base,
                describe_reqwest(&e)
            )
        })?;
        self.check(what, response).await
    }

    /// A non-2xx answer as an error with the server's message.
    async fn check(&self, what: &str, response: reqwest::Response) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        match sparkstage_api::error::error_answer(response).await {
            Some((code, message)) => bail!("{what}: HTTP {status} ({code}): {message}"),
            None => bail!("{what}: HTTP {status}"),
        }
    }

    /// The digests of `digests` the server does not have.
    pub async fn missing(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let body = FindMissingRequest {
            digests: digests.to_vec(),
        };
        let response = self
            .send(
                "asking for missing blobs",
                self.request(reqwest::Method::POST, MISSING_PATH)
                    .json(&body),
            )
            .await?;
        Ok(response.json::<FindMissingResponse>().await?.missing)
    }

    /// Uploads `path` as blob `digest`, streaming it; `progress` gets the bytes sent so far.
    pub async fn upload(
        &self,
        path: &Path,
        digest: &Digest,
        size: u64,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<()> {
        // No more than the bytes that were hashed: a file that grew since is refused by the
        // server's digest check, not sent without end.
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?
            .take(size);
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(
            move |chunk| {
                sent += chunk.len() as u64;
                progress(sent);
            },
        );
        let request = self
            .request(reqwest::Method::PUT, &blob_path(digest))
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        self.send(&format!("uploading {}", path.display()), request)
            .await?;
        let now = stat(path)?.0;
        anyhow::ensure!(
            now == size,
            "{} changed while it was staged ({size} bytes hashed and uploaded, {now} bytes now); \
             stage it once it is complete",
            path.display()
        );
        Ok(())
    }

    /// Resolves Maven coordinates on the server; their jars are stored there as blobs.
    pub async fn resolve(
        &self,
        request: &sparkstage_api::resolve::ResolveRequest,
    ) -> Result<sparkstage_api::resolve::ResolveResponse> {
        let response = self
            .send(
                &format!("resolving {}", request.coordinates.join(",")),
                self.request(reqwest::Method::POST, "/v1/resolve")
                    .json(request),
            )
            .await?;
        Ok(response.json().await?)
    }

    /// What the server offers (`GET /v1/info`), asked once per client.
    pub async fn info(&self) -> Result<sparkstage_api::info::ServerInfo> {
        let info = self
            .info
            .get_or_try_init(|| async {
                let response = self
                    .send(
                        "asking the server what it offers",
                        self.request(reqwest::Method::GET, sparkstage_api::info::INFO_PATH),
                    )
                    .await?;
                anyhow::Ok(response.json().await?)
            })
            .await?;
        Ok(info.clone())
    }

    /// The server's bundles (an operator's call: the upload token).
    pub async fn list_bundles(&self) -> Result<Vec<BundleSummary>> {
        let response = self
            .send(
                "listing bundles",
                self.request(reqwest::Method::GET, "/v1/bundles"),
            )
            .await?;
        Ok(response.json::<ListBundlesResponse>().await?.bundles)
    }

    /// Deletes a bundle (an operator's call: the upload token).
    pub async fn delete_bundle(&self, id: &str) -> Result<()> {
        self.send(
            &format!("deleting bundle {id}"),
            self.request(reqwest::Method::DELETE, &bundle_path(id)),
        )
        .await?;
        Ok(())
    }

    /// Creates a bundle; a 409 names the blobs the server does not have (any more: a garbage
    /// collection may have taken a blob it reported present).
    pub async fn create_bundle(&self, request: &CreateBundleRequest) -> Result<Created> {
        const WHAT: &str = "creating the bundle";
        let response = self
            .request(reqwest::Method::POST, "/v1/bundles")
            .json(request)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{WHAT}: cannot reach the staging server {}: {}",
                    self.base,
                    describe_reqwest(&e)
                )
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            // One digest per entry at most, in JSON.
            let max = (request.entries.len() + 16) * 80 + 4096;
            let body = sparkstage_api::error::body_bytes(response, max).await;
            if let Ok(missing) = serde_json::from_slice::<MissingBlobsBody>(&body) {
                return Ok(Created::Missing(missing.missing));
            }
            bail!("{WHAT}: HTTP {status}");
        }
        let response = self.check(WHAT, response).await?;
        Ok(Created::Bundle(response.json().await?))
    }

    /// One sweep and garbage collection on the server (an operator's call: the upload token).
    pub async fn gc(&self, dry_run: bool) -> Result<GcResponse> {
        let response = self
            .send(
                if dry_run {
                    "garbage collection (dry run)"
                } else {
                    "garbage collection"
                },
                self.request(reqwest::Method::POST, "/v1/gc")
                    .json(&GcRequest { dry_run }),
            )
            .await?;
        Ok(response.json().await?)
    }
}

/// What creating a bundle did.
#[derive(Debug)]
pub enum Created {
    Bundle(CreateBundleResponse),
    /// The server does not have these blobs: upload them, then create again.
    Missing(Vec<Digest>),
}

/// Remembers the digest of a file by (path, size, mtime), so an unchanged file is not read again.
///
/// As git does for its index, an entry is trusted only when the file's mtime was at least
/// [`RACY`] older than the moment it was hashed: a file changed again within the filesystem's
/// timestamp granularity keeps its size and mtime, and is hashed again instead of misread.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DigestCache {
    files: BTreeMap<PathBuf, CachedDigest>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CachedDigest {
    size: u64,
    mtime_ns: u128,
    hashed_at_ns: u128,
    digest: Digest,
}

/// How much older than its hashing a file's mtime must be for its cached digest to be trusted.
pub const RACY: Duration = Duration::from_secs(2);

/// A file's size and mtime; only a regular file can be staged (a FIFO, a device such as
/// `/dev/zero` or a socket has no fixed content: reading it could hang or never end).
fn stat(path: &Path) -> Result<(u64, u128)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "{} is not a regular file (a {}); only regular files can be staged: copy it to a file \
         first",
        path.display(),
        file_type_name(&meta.file_type())
    );
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((meta.len(), mtime))
}

fn file_type_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl DigestCache {
    /// `$SPARKSTAGE_DIGEST_CACHE`, else `$XDG_CACHE_HOME/sparkstage/digests.json`, else
    /// `~/.cache/sparkstage/digests.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("SPARKSTAGE_DIGEST_CACHE") {
            return Some(p.into());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("sparkstage").join("digests.json"))
    }

    /// Loads the cache at `path`; empty when absent or unreadable (everything is hashed then).
    pub fn load(path: Option<PathBuf>) -> Self {
        let mut cache: Self = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        cache.path = path;
        cache
    }

    fn lookup(&self, path: &Path, size: u64, mtime_ns: u128) -> Option<Digest> {
        let c = self.files.get(path)?;
        (c.size == size
            && c.mtime_ns == mtime_ns
            && c.hashed_at_ns.saturating_sub(c.mtime_ns) >= RACY.as_nanos())
        .then_some(c.digest)
    }

    /// Writes the cache (temporary file and rename); best effort, as it only saves time.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let Some(dir) = path.parent() else { return };
        let _ = std::fs::create_dir_all(dir);
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = serde_json::to_vec(self)
            .ok()
            .is_some_and(|bytes| std::fs::write(&tmp, bytes).is_ok());
        if !written || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Hashes a file, streaming it.
pub fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), size))
}

/// The digest and size of every file, from the cache or hashed in parallel; the number hashed.
pub async fn digests(
    files: &[StageFile],
    cache: &mut DigestCache,
) -> Result<(Vec<(Digest, u64)>, usize)> {
    let mut out = vec![None; files.len()];
    let mut todo = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let (size, mtime) = stat(&file.path)?;
        match cache.lookup(&file.path, size, mtime) {
            Some(digest) => out[i] = Some((digest, size)),
            None => todo.push((i, file.path.clone(), mtime)),
        }
    }
    let hashed = todo.len();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<_> = futures::stream::iter(todo)
        .map(|(i, path, mtime)| async move {
            let hashed_at = now_ns();
            let result = tokio::task::spawn_blocking({
                let path = path.clone();
                move || hash_file(&path)
            })
            .await
            .context("hashing task failed")?;
            result.map(|(digest, size)| (i, path, mtime, hashed_at, digest, size))
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    for result in results {
        let (i, path, mtime_ns, hashed_at_ns, digest, size) = result?;
        // A file written to while it was hashed would be staged as whatever was read.
        let after = stat(&path)?;
        anyhow::ensure!(
            after == (size, mtime_ns),
            "{} changed while it was hashed ({size} bytes read, {} bytes now); stage it once it \
             is complete",
            path.display(),
            after.0
        );
        cache.files.insert(
            path,
            CachedDigest {
                size,
                mtime_ns,
                hashed_at_ns,
                digest,
            },
        );
        out[i] = Some((digest, size));
    }
    Ok((out.into_iter().flatten().collect(), hashed))
}

/// Times a bundle is created again after its blobs were taken by a garbage collection.
const CREATE_ATTEMPTS: usize = 3;

/// Uploads `uploads` (path, digest, size, name), `parallel` at a time, with progress.
async fn upload_all(
    server: &ServerClient,
    uploads: &[(PathBuf, Digest, u64, String)],
    parallel: usize,
    progress: &Progress,
) -> Result<()> {
    if uploads.is_empty() {
        return Ok(());
    }
    let total = progress.total(uploads.len(), uploads.iter().map(|u| u.2).sum());
    futures::stream::iter(uploads.iter().cloned())
        .map(|(path, digest, size, name)| {
            let server = server.clone();
            let bar = progress.file(&total, &name, size);
            async move {
                let started = Instant::now();
                let on_progress = {
                    let bar = bar.clone();
                    move |sent: u64| bar.set(sent)
                };
                server.upload(&path, &digest, size, on_progress).await?;
                bar.finish(started.elapsed());
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    total.finish();
    Ok(())
}

/// Stages `files`: digests, one missing-blobs call, uploads of what is missing (`parallel` at a
/// time), then the bundle with `owner` and `ttl`.
pub async fn stage(
    server: &ServerClient,
    files: &[StageFile],
    bundle: BundleSpec<'_>,
    cache: &mut DigestCache,
    parallel: usize,
    progress: &Progress,
) -> Result<Staged> {
    let started = Instant::now();
    let (sums, hashed) = digests(files, cache).await?;
    cache.save();
    let mut entries: Vec<BundleEntry> = files
        .iter()
        .zip(&sums)
        .map(|(f, (digest, size))| BundleEntry {
            name: f.name.clone(),
            digest: *digest,
            size: *size,
            kind: f.kind,
        })
        .collect();
    let mut unique: Vec<Digest> = entries.iter().map(|e| e.digest).collect();
    unique.sort();
    unique.dedup();
    let missing = server.missing(&unique).await?;
    // One upload per missing digest, from the first file that has it.
    let mut by_digest: HashMap<Digest, (&Path, u64, &str)> = HashMap::new();
    for (file, entry) in files.iter().zip(&entries) {
        by_digest
            .entry(entry.digest)
            .or_insert((&file.path, entry.size, &file.name));
    }
    // Entries the server already stores (resolved jars) join the bundle without an upload.
    entries.extend(bundle.stored.iter().cloned());
    let request = CreateBundleRequest {
        entries: entries.clone(),
        owner: bundle.owner,
        ttl: bundle.ttl,
        sources: bundle.sources,
    };
    let mut missing = missing;
    let mut uploaded_files = 0;
    let mut uploaded_bytes = 0;
    let mut attempt = 0;
    let bundle = loop {
        let uploads: Vec<(PathBuf, Digest, u64, String)> = missing
            .iter()
            .filter_map(|d| {
                by_digest
                    .get(d)
                    .map(|(p, s, n)| (p.to_path_buf(), *d, *s, n.to_string()))
            })
            .collect();
        upload_all(server, &uploads, parallel, progress).await?;
        uploaded_files += uploads.len();
        uploaded_bytes += uploads.iter().map(|u| u.2).sum::<u64>();
        match server.create_bundle(&request).await? {
            Created::Bundle(created) => break created,
            // A garbage collection took blobs the server had said it had: upload them, once
            // or twice more.
            Created::Missing(gone) if attempt < CREATE_ATTEMPTS => {
                if let Some(d) = gone.iter().find(|d| !by_digest.contains_key(d)) {
                    bail!(
                        "creating the bundle: the server no longer has {d}, a jar it resolved; \
                         run the command again to resolve it anew"
                    );
                }
                attempt += 1;
                missing = gone;
            }
            Created::Missing(gone) => bail!(
                "creating the bundle: the server still misses {} blobs after {CREATE_ATTEMPTS} \
                 uploads of them (its garbage collection keeps deleting them: is --gc-grace 0?)",
                gone.len()
            ),
        }
    };
    Ok(Staged {
        bundle,
        entries,
        hashed,
        uploaded_files,
        uploaded_bytes,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path) -> StageFile {
        StageFile {
            path: path.to_owned(),
            name: "x.jar".into(),
            kind: EntryKind::Jar,
        }
    }

    #[tokio::test]
    async fn only_regular_files_are_staged() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("pipe.jar");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        anyhow::ensure!(made.success(), "mkfifo failed");
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
        ] {
            let started = Instant::now();
            let e = digests(&[file(path)], &mut DigestCache::default())
                .await
                .expect_err("not a regular file");
            let e = e.to_string();
            anyhow::ensure!(e.contains("not a regular file") && e.contains(what), "{e}");
            anyhow::ensure!(started.elapsed() < Duration::from_secs(2));
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_file_that_grows_while_it_is_hashed_is_refused() -> anyhow::Result<()> {
        use std::io::Write as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("growing.jar");
        std::fs::write(&path, vec![7u8; 64 << 20])?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    f.write_all(b"more")?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
        };
        std::thread::sleep(Duration::from_millis(5));
        let result = digests(&[file(&path)], &mut DigestCache::default()).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let e = result.expect_err("grew").to_string();
        anyhow::ensure!(e.contains("changed while it was hashed"), "{e}");
        // Once it is complete, it stages.
        let (sums, hashed) = digests(&[file(&path)], &mut DigestCache::default()).await?;
        anyhow::ensure!(hashed == 1 && sums[0].1 == std::fs::metadata(&path)?.len());
        Ok(())
    }
}
