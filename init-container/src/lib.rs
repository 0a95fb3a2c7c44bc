//! `sparkstage-init`: the init container of Spark's driver and executor pods.
//!
//! It runs before Spark's container, with the same volumes, and fills the jars directory
//! (default `/var/spark-data/spark-jars`) and the files directory (default
//! `/var/spark-data/spark-files`) from a staged bundle of `sparkstage-server`, from http(s) URLs,
//! and from `s3://`, `gs://` and `az://` objects through `object_store` (credentials and
//! endpoints from the usual `AWS_*`, `GOOGLE_*` and `AZURE_*` environment, web identity and
//! workload identity included), and from HDFS through WebHDFS ([`webhdfs`]).
//!
//! ## HDFS
//!
//! `webhdfs://host:port/path` is read from `http://host:port/webhdfs/v1/path?op=OPEN` (port
//! 9870 when absent) and `swebhdfs://` the same over https (port 9871); HttpFS speaks the same
//! protocol. `hdfs://namenode:8020/path` names the NameNode's RPC port, which does not speak
//! HTTP, so it is read through WebHDFS at `--webhdfs-address` (`SPARKSTAGE_WEBHDFS_ADDRESS`,
//! `host:port` or `http(s)://host:port`), by default the same host on port 9870, the Hadoop 3
//! `dfs.namenode.http-address` port. The NameNode's `307` redirect to a DataNode is followed
//! keeping `user.name` and `delegation`; a broken download resumes by re-issuing `OPEN` with
//! `offset=<bytes so far>` (WebHDFS does not honour `Range`). `user.name` comes from
//! `--hdfs-user` (`HADOOP_USER_NAME`), a delegation token from the file
//! `--hdfs-delegation-token-file` (`SPARKSTAGE_HDFS_DELEGATION_TOKEN_FILE`); the token is never
//! printed. A `RemoteException` answer becomes the message: `FileNotFoundException` is a
//! permanent "not found: <path>", `AccessControlException` a permanent "access denied",
//! `StandbyException`, `RetriableException` and 5xx are retried. `#sha256=<hex>` gives the
//! expected digest as for http sources. The spec file takes the same settings as
//! `webhdfs_address`, `hdfs_user` and `hdfs_delegation_token_file`.
//!
//! Every file is downloaded to a fresh `.<name>.<random>.sparkstage-tmp` (created exclusively;
//! the server refuses entry names under `.sparkstage` or ending in `.sparkstage-tmp`, so no entry
//! can collide with it or with the state file) in its target directory, hashed while it
//! is written, checked against the expected sha256 and size, fsynced and renamed: a file at its
//! final name is always complete and verified. Downloads run in parallel (`--parallelism`), retry
//! transient failures (connection errors, 5xx, 429, truncated or stalled bodies) with exponential
//! backoff and full jitter ([`backoff`]), resume with `Range` within a run when the origin
//! supports it, and share one deadline (`--timeout`, default 5 minutes). Temporary files left by
//! a killed run are removed at start, not resumed.
//!
//! A restarted pod downloads nothing again: each target directory keeps
//! `.sparkstage-verified.json` (name → digest, size, mtime) and a file still matching its record
//! is skipped without being read.
//!
//! With `--cache-dir` a node-local, content-addressed cache is used for files whose digest is
//! known ([`cache`]). `--header`, `--header-file` and per-source `headers` in the spec file add
//! request headers to http(s) sources; their values are never printed.
//!
//! ## Input
//!
//! Flags, each also an environment variable (`--jars-dir` is `SPARKSTAGE_JARS_DIR`, positional
//! sources are `SPARKSTAGE_SOURCES`, comma-separated), and optionally a JSON spec file
//! (`--spec FILE`, the form a mounted ConfigMap gives) with the same fields. Flags and variables
//! override the file's fields; the file's sources come first.
//!
//! ```json
//! {
//!   "jars_dir": "/var/spark-data/spark-jars",
//!   "files_dir": "/var/spark-data/spark-files",
//!   "server": "http://sparkstage.spark-system:10000",
//!   "bundle": "3f2a9c0e...",
//!   "token_file": "/etc/sparkstage/token",
//!   "timeout": "5m",
//!   "parallelism": 8,
//!   "cache_dir": "/var/cache/sparkstage",
//!   "sources": [
//!     "https://repo1.maven.org/maven2/org/slf4j/slf4j-api/2.0.13/slf4j-api-2.0.13.jar#sha256=<64 hex of the jar>",
//!     {"url": "https://example.com/data/lookup.csv", "headers": {"Authorization": "Bearer <token>"}}
//!   ]
//! }
//! ```
//!
//! A bundle's entries go by kind: `jar` to the jars directory; `file`, `pyfile` and `archive` to
//! the files directory. A URL source goes to the jars directory when its file name (the last path
//! segment) ends in `.jar`, else to the files directory; `#sha256=<hex>` gives its expected digest.
//! The bundle token is read from the file and trimmed; it is never printed.
//!
//! ## The 2017 fork's pods
//!
//! `--fork-properties FILE` (by default the fork's `/etc/spark-init/spark-init.properties`, when
//! it exists and nothing else is asked) reads the fork's init-container configuration
//! (`sparkstage_injection::fork`): its two resources, each a bundle of one tar.gz fetched like a
//! bundle's entry (verified, resumed) under a reserved name and unpacked into its directory by
//! [`unpack`] (all or nothing, never outside it), then removed; its remote jars and files, each
//! into its directory; its directories and timeout. A re-run skips an archive whose files are
//! all still as unpacked (`.sparkstage-verified.json` keeps the archive's digest and names).
//!
//! ## Output
//!
//! On success one line on stderr: files, bytes, seconds, MiB/s and how many were skipped. On
//! failure, exit status 1 and one line per failed source: the source (a URL without user info or
//! query), what failed, and how many attempts were made.

pub mod backoff;
pub mod cache;
pub mod fetch;
pub mod object;
pub mod spec;
pub mod state;
pub mod unpack;
pub mod webhdfs;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use sparkstage_api::bundles::{BundleManifest, TargetDir, bundle_blob_path, bundle_path};
use tokio::time::Instant;

use crate::backoff::{Backoff, Jitter, RetryPolicy, random_jitter};
use crate::cache::Cache;
use crate::fetch::{AttemptError, Failure, Fetched, Job, Origin, Transfer, error_detail};
use crate::spec::{BundleSource, Config};
use crate::state::{Record, State};
use sparkstage_api::error::describe_reqwest;
use sparkstage_api::shown::url as redact;

/// Knobs a test turns; the binary uses the defaults. (The number of attempts and the timeouts
/// are flags, in [`Config`].)
#[derive(Clone)]
pub struct Options {
    /// The first and the longest delay between attempts.
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub jitter: Jitter,
}

impl Default for Options {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            initial_delay: policy.initial,
            max_delay: policy.max_delay,
            jitter: random_jitter(),
        }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub fetched: usize,
    /// Of the fetched files, those copied from the node-local cache.
    pub from_cache: usize,
    pub skipped: usize,
    /// Bytes of the fetched files.
    pub bytes: u64,
    pub elapsed: Duration,
    /// Lines about what did not fail the run but should be looked at (the cache).
    pub warnings: Vec<String>,
}

impl Summary {
    /// The one line printed on success.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        let rate = if secs > 0.0 { mib / secs } else { 0.0 };
        let cached = if self.from_cache > 0 {
            format!(" ({} from the node cache)", self.from_cache)
        } else {
            String::new()
        };
        format!(
            "sparkstage-init: fetched {} files{cached}, {} bytes in {secs:.3} s ({rate:.1} MiB/s); {} already present and verified, skipped",
            self.fetched, self.bytes, self.skipped
        )
    }
}

/// Why a run failed: a setup error before any download, or the failed sources.
#[derive(Debug, Clone)]
pub enum RunError {
    Setup(String),
    Sources(Vec<Failure>),
}

impl RunError {
    /// The lines printed on failure.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Setup(message) => vec![format!("sparkstage-init: {message}")],
            Self::Sources(failures) => failures
                .iter()
                .map(|f| {
                    format!(
                        "sparkstage-init: failed: {}: {} ({} attempt{})",
                        f.source,
                        f.error,
                        f.attempts,
                        if f.attempts == 1 { "" } else { "s" }
                    )
                })
                .collect(),
        }
    }
}

/// Fetches everything `config` names.
pub async fn run(config: &Config, options: &Options) -> Result<Summary, RunError> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .build()
        .map_err(|e| RunError::Setup(format!("cannot build the HTTP client: {e}")))?;
    let transfer = Transfer {
        client,
        policy: RetryPolicy {
            initial: options.initial_delay,
            max_delay: options.max_delay,
            max_attempts: config.max_attempts,
        },
        jitter: options.jitter.clone(),
        deadline: started + config.timeout,
        timeout: config.timeout,
    };

    let hdfs_token = match &config.hdfs.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    RunError::Setup(format!(
                        "cannot read the HDFS delegation token file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let mut origins = Origins::new(
        config.hdfs.clone(),
        hdfs_token,
        config.connect_timeout,
        config.read_timeout,
    );

    let mut jobs = Vec::new();
    if let Some(bundle) = &config.bundle {
        jobs.extend(bundle_jobs(&transfer, bundle, config).await?);
    }
    // The fork's archives: each a job for the archive under a reserved name, unpacked once it
    // has arrived and been verified.
    let mut archives: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for archive in &config.archives {
        let job = archive_job(&transfer, archive, config).await?;
        archives.insert(job.final_path());
        jobs.push(job);
    }
    for source in &config.urls {
        let dir = match (
            &source.dir,
            sparkstage_injection::layout::target_of(&source.name),
        ) {
            (Some(dir), _) => dir,
            (None, TargetDir::Jars) => &config.jars_dir,
            (None, TargetDir::Files) => &config.files_dir,
        };
        let shown = redact(&source.url);
        let origin = origins
            .origin(&source.url, source.headers.clone())
            .map_err(|e| RunError::Setup(format!("source {shown}: {e}")))?;
        jobs.push(Job {
            source: shown,
            origin,
            dir: dir.clone(),
            name: source.name.clone(),
            sha256: source.sha256,
            size: None,
            max_size: None,
        });
    }
    check_unique(&jobs)?;

    let mut states: BTreeMap<PathBuf, State> = BTreeMap::new();
    for job in &jobs {
        if !states.contains_key(&job.dir) {
            std::fs::create_dir_all(&job.dir).map_err(|e| {
                RunError::Setup(format!("cannot create {}: {e}", job.dir.display()))
            })?;
            fetch::remove_leftovers(&job.dir)
                .map_err(|e| RunError::Setup(format!("cannot read {}: {e}", job.dir.display())))?;
            states.insert(job.dir.clone(), State::load(&job.dir));
        }
    }
    let (skip, todo): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
        let state = &states[&job.dir];
        match archives.contains(&job.final_path()) {
            // An archive unpacked before, all of whose files are still as written.
            true => job
                .sha256
                .as_ref()
                .is_some_and(|digest| state.is_unpacked(&job.dir, digest)),
            false => state.is_verified(&job.dir, &job.name, job.sha256.as_ref(), job.size),
        }
    });

    let mut warnings = Vec::new();
    let cache = match &config.cache {
        Some(cache_config) if !todo.is_empty() => match Cache::open(cache_config.clone()) {
            Ok(cache) => Some(cache),
            Err(e) => {
                warnings.push(format!(
                    "sparkstage-init: warning: cannot use the cache {}: {e}; downloading",
                    cache_config.root.display()
                ));
                None
            }
        },
        _ => None,
    };
    // The deadline bounds the whole run, whatever the number of files: what has not arrived by
    // then fails (the transfers in flight are dropped, and their temporary files removed as they
    // drop), what did arrive is recorded.
    let sources: Vec<String> = todo.iter().map(|j| j.source.clone()).collect();
    let results: Vec<(Job, Result<Fetched, Failure>)> = futures::stream::iter(todo)
        .map(|job| {
            let transfer = &transfer;
            let cache = cache.as_ref();
            async move {
                let result = transfer.fetch(&job, cache).await;
                (job, result)
            }
        })
        .buffer_unordered(config.parallelism)
        .take_until(tokio::time::sleep_until(transfer.deadline))
        .collect()
        .await;
    let mut unfinished = Vec::new();
    if results.len() < sources.len() {
        let done: std::collections::HashSet<&str> =
            results.iter().map(|(job, _)| job.source.as_str()).collect();
        unfinished = sources
            .iter()
            .filter(|s| !done.contains(s.as_str()))
            .map(|source| Failure {
                source: source.clone(),
                error: transfer.deadline_message("not fetched in time"),
                attempts: 0,
            })
            .collect();
    }

    let mut summary = Summary {
        skipped: skip.len(),
        ..Summary::default()
    };
    let mut cache_filled = false;
    let mut failures = Vec::new();
    let mut changed = HashMap::new();
    for (job, result) in results {
        match result {
            Ok(fetched) if archives.contains(&job.final_path()) => {
                let state = states.get_mut(&job.dir).expect("every dir has a state");
                match unpack_archive(&job, &fetched, config.unpack_limits, state).await {
                    Ok(files) => {
                        summary.fetched += files;
                        summary.bytes += fetched.size;
                        changed.insert(job.dir.clone(), ());
                    }
                    Err(error) => failures.push(Failure {
                        source: job.source.clone(),
                        error,
                        attempts: 1,
                    }),
                }
            }
            Ok(fetched) => {
                summary.fetched += 1;
                summary.bytes += fetched.size;
                if fetched.from_cache {
                    summary.from_cache += 1;
                } else if cache.is_some() && fetched.cache_warning.is_none() {
                    cache_filled |= job.sha256.is_some();
                }
                if let Some(warning) = fetched.cache_warning {
                    warnings.push(format!(
                        "sparkstage-init: warning: {}: {warning}",
                        job.source
                    ));
                }
                if let Some((size, mtime_ns)) = state::stat(&job.final_path()) {
                    let state = states.get_mut(&job.dir).expect("every dir has a state");
                    state.files.insert(
                        job.name.clone(),
                        Record {
                            digest: fetched.digest,
                            size,
                            mtime_ns,
                        },
                    );
                    changed.insert(job.dir.clone(), ());
                }
            }
            Err(failure) => failures.push(failure),
        }
    }
    failures.extend(unfinished);
    // Recorded even when some sources failed: a restart then skips what did arrive.
    for dir in changed.keys() {
        if let Err(e) = states[dir].save(dir) {
            failures.push(Failure {
                source: dir.display().to_string(),
                error: format!("cannot write {}: {e}", state::STATE_FILE),
                attempts: 1,
            });
        }
    }
    if let Some(cache) = &cache
        && cache_filled
        && let Err(e) = cache.evict()
    {
        warnings.push(format!(
            "sparkstage-init: warning: cannot trim the cache to its size limit: {e}"
        ));
    }
    summary.warnings = warnings;
    summary.elapsed = started.elapsed();
    if failures.is_empty() {
        Ok(summary)
    } else {
        failures.sort_by(|a, b| a.source.cmp(&b.source));
        Err(RunError::Sources(failures))
    }
}

/// Two sources for one final path are an error, reported before anything is downloaded.
fn check_unique(jobs: &[Job]) -> Result<(), RunError> {
    let mut seen: HashMap<PathBuf, &str> = HashMap::new();
    let mut clashes = Vec::new();
    for job in jobs {
        if let Some(first) = seen.insert(job.final_path(), &job.source) {
            clashes.push(format!(
                "{} and {} would both write {}; rename one of them",
                first,
                job.source,
                job.final_path().display()
            ));
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(RunError::Setup(clashes.join("; ")))
    }
}

/// Reads the token and the manifest, and turns every entry into a job.
async fn bundle_jobs(
    transfer: &Transfer,
    bundle: &BundleSource,
    config: &Config,
) -> Result<Vec<Job>, RunError> {
    let token = std::fs::read_to_string(&bundle.token_file)
        .map_err(|e| {
            RunError::Setup(format!(
                "cannot read the bundle token file {}: {e}",
                bundle.token_file.display()
            ))
        })?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(RunError::Setup(format!(
            "the bundle token file {} is empty",
            bundle.token_file.display()
        )));
    }
    let base = bundle.server.as_str().trim_end_matches('/').to_owned();
    let source = format!("bundle {} at {}", bundle.id, redact(&bundle.server));
    let url = |path: String| {
        reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| RunError::Setup(format!("{source}: cannot build a URL for {path}: {e}")))
    };
    let manifest_url = url(bundle_path(&bundle.id))?;
    let mut authorization = reqwest::header::HeaderMap::new();
    let mut bearer =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RunError::Setup(format!(
                "the bundle token file {} holds characters a token cannot have",
                bundle.token_file.display()
            ))
        })?;
    bearer.set_sensitive(true);
    authorization.insert(reqwest::header::AUTHORIZATION, bearer);
    let manifest = fetch_manifest(transfer, &manifest_url, &token)
        .await
        .map_err(|(error, attempts)| {
            RunError::Sources(vec![Failure {
                source: source.clone(),
                error,
                attempts,
            }])
        })?;
    let mut jobs = Vec::new();
    sparkstage_api::bundles::validate_entries(&manifest.entries)
        .map_err(|e| RunError::Setup(format!("{source}: {e}")))?;
    for entry in &manifest.entries {
        let dir = match entry.kind.target_dir() {
            TargetDir::Jars => &config.jars_dir,
            TargetDir::Files => &config.files_dir,
        };
        jobs.push(Job {
            source: format!("bundle {} entry {} ({})", bundle.id, entry.name, entry.kind),
            origin: Origin::Http {
                url: url(bundle_blob_path(&bundle.id, &entry.digest))?,
                headers: authorization.clone(),
            },
            dir: dir.clone(),
            name: entry.name.clone(),
            sha256: Some(entry.digest),
            size: Some(entry.size),
            max_size: None,
        });
    }
    Ok(jobs)
}

/// Where the bytes of a URL come from: object stores through `object_store`, WebHDFS (its own
/// client, which does not follow redirects: the NameNode's is followed by hand), else HTTP. One
/// per run (the init container) or per server (its pull-through cache): the WebHDFS client is
/// made once.
pub struct Origins {
    hdfs: webhdfs::HdfsConfig,
    hdfs_token: Option<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    hdfs_client: Option<reqwest::Client>,
}

impl Origins {
    pub fn new(
        hdfs: webhdfs::HdfsConfig,
        hdfs_token: Option<String>,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Self {
        Self {
            hdfs,
            hdfs_token,
            connect_timeout,
            read_timeout,
            hdfs_client: None,
        }
    }

    /// The origin of `url`; `headers` go with an HTTP request.
    pub fn origin(
        &mut self,
        url: &url::Url,
        headers: reqwest::header::HeaderMap,
    ) -> Result<Origin, String> {
        if object::is_object_url(url) {
            let (store, path) = object::open(url)?;
            return Ok(Origin::Store { store, path });
        }
        if !webhdfs::is_webhdfs_url(url) {
            return Ok(Origin::Http {
                url: url.clone(),
                headers,
            });
        }
        let open = webhdfs::open_url(url, &self.hdfs, self.hdfs_token.as_deref())?;
        let client = match &self.hdfs_client {
            Some(client) => client.clone(),
            None => {
                let client = reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                self.hdfs_client = Some(client.clone());
                client
            }
        };
        Ok(Origin::WebHdfs {
            client,
            url: open,
            path: url.path().to_owned(),
        })
    }
}

/// The job of a fork resource: its bundle's one archive entry, written under a reserved name of
/// its directory (no entry can have it) and unpacked there once verified.
async fn archive_job(
    transfer: &Transfer,
    archive: &spec::ArchiveSource,
    config: &Config,
) -> Result<Job, RunError> {
    let jobs = bundle_jobs(transfer, &archive.bundle, config).await?;
    let [job] = &jobs[..] else {
        return Err(RunError::Setup(format!(
            "resource {} has {} entries; a resource of the fork's API is one archive",
            archive.bundle.id,
            jobs.len()
        )));
    };
    Ok(Job {
        source: format!("resource {}", archive.bundle.id),
        dir: archive.dir.clone(),
        name: format!(
            "{}-archive-{}.tar.gz",
            sparkstage_api::bundles::RESERVED_PREFIX,
            archive.bundle.id
        ),
        ..job.clone()
    })
}

/// Unpacks the fetched archive of `job` into its directory ([`unpack::unpack`]: all or nothing),
/// removes the archive, and records the files in `state`; the number of files.
async fn unpack_archive(
    job: &Job,
    fetched: &Fetched,
    limits: unpack::Limits,
    state: &mut State,
) -> Result<usize, String> {
    let archive = job.final_path();
    let dir = job.dir.clone();
    let what = job.source.clone();
    let unpacked = tokio::task::spawn_blocking({
        let archive = archive.clone();
        move || unpack::unpack(&archive, &dir, limits, &what)
    })
    .await
    .map_err(|e| format!("unpacking stopped: {e}"))?;
    // The archive goes either way: what it held is unpacked, or refused.
    let _ = std::fs::remove_file(&archive);
    state.files.remove(&job.name);
    let unpacked = unpacked?;
    let mut names = Vec::new();
    for file in &unpacked {
        if let Some((size, mtime_ns)) = state::stat(&job.dir.join(&file.name)) {
            state.files.insert(
                file.name.clone(),
                Record {
                    digest: file.digest,
                    size,
                    mtime_ns,
                },
            );
        }
        names.push(file.name.clone());
    }
    state.archives.insert(fetched.digest.to_string(), names);
    Ok(unpacked.len())
}

/// The most a manifest may hold: 64 KiB a thousand entries and more than the server's
/// `--max-bundle-entries` (10,000 by default) ever gives; a larger answer is not ours.
pub const MAX_MANIFEST_BYTES: usize = 32 << 20;

/// Reads a manifest body within [`MAX_MANIFEST_BYTES`] and the deadline.
async fn read_manifest(
    transfer: &Transfer,
    response: reqwest::Response,
) -> Result<BundleManifest, AttemptError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
    {
        return Err(AttemptError::Permanent(format!(
            "the manifest is larger than {MAX_MANIFEST_BYTES} bytes; this is not a sparkstage server"
        )));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout_at(transfer.deadline, stream.next()).await {
            Err(_) => {
                return Err(AttemptError::Permanent(
                    transfer.deadline_message("the manifest did not arrive"),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(AttemptError::Transient(format!(
                    "cannot read the manifest: {}",
                    describe_reqwest(&e)
                )));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(AttemptError::Permanent(format!(
                "the manifest is larger than {MAX_MANIFEST_BYTES} bytes; this is not a sparkstage \
                 server"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| {
        AttemptError::Permanent(format!("the manifest is not a sparkstage manifest: {e}"))
    })
}

async fn fetch_manifest(
    transfer: &Transfer,
    url: &reqwest::Url,
    token: &str,
) -> Result<BundleManifest, (String, u32)> {
    let mut backoff = Backoff::new(transfer.policy, transfer.jitter.clone());
    loop {
        backoff.start_attempt();
        let request = transfer.client.get(url.clone()).bearer_auth(token);
        let error = match transfer.send(request).await {
            Err(AttemptError::Permanent(e)) => return Err((e, backoff.attempts())),
            Err(AttemptError::Transient(e)) => e,
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    match read_manifest(transfer, response).await {
                        Ok(manifest) => return Ok(manifest),
                        Err(AttemptError::Permanent(e)) => return Err((e, backoff.attempts())),
                        Err(AttemptError::Transient(e)) => e,
                    }
                } else if status == reqwest::StatusCode::NOT_FOUND
                    || status == reqwest::StatusCode::UNAUTHORIZED
                {
                    return Err((
                        format!(
                            "HTTP {status}{}; check the bundle id and the token file \
                             (an unknown, expired or deleted bundle and a wrong token look the same)",
                            error_detail(response).await
                        ),
                        backoff.attempts(),
                    ));
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    format!("HTTP {status}{}", error_detail(response).await)
                } else {
                    return Err((
                        format!("HTTP {status}{}", error_detail(response).await),
                        backoff.attempts(),
                    ));
                }
            }
        };
        if let Err(e) = transfer.pause(&mut backoff, error).await {
            return Err((e, backoff.attempts()));
        }
    }
}
