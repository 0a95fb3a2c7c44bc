//! Command-line flags, each also an environment variable `SPARKSTAGE_...`.
//!
//! Secrets (the upload token) come only from a file or the environment and are never echoed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sparkstage_api::size::parse_size;
use sparkstage_maven::credentials::Credentials;

use crate::resolutions::RequestRepositories;

/// The sparkstage staging server: content-addressed blobs and bundles for Spark on Kubernetes.
#[derive(Debug, Clone, Parser)]
#[command(name = "sparkstage-server", version, about)]
pub struct Config {
    /// Where blobs and bundle metadata live: a local directory (path or file:///path),
    /// memory://, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix. Cloud
    /// credentials and endpoints come from the usual AWS_*, GOOGLE_* and AZURE_* variables.
    #[arg(long, env = "SPARKSTAGE_STORAGE", default_value = "./sparkstage-data")]
    pub storage: String,

    /// Address and port to listen on.
    #[arg(long, env = "SPARKSTAGE_LISTEN", default_value = "127.0.0.1:10000")]
    pub listen: SocketAddr,

    /// File holding the bearer token that upload endpoints require.
    #[arg(long, env = "SPARKSTAGE_UPLOAD_TOKEN_FILE")]
    pub upload_token_file: Option<PathBuf>,

    /// The upload bearer token itself (prefer --upload-token-file).
    #[arg(
        long,
        env = "SPARKSTAGE_UPLOAD_TOKEN",
        hide_env_values = true,
        conflicts_with = "upload_token_file"
    )]
    pub upload_token: Option<String>,

    /// Accept unauthenticated uploads on a non-loopback address (never do this on a shared network).
    #[arg(long, env = "SPARKSTAGE_INSECURE")]
    pub insecure: bool,

    /// The largest blob accepted (bytes; units like 512MiB, 16GiB).
    #[arg(long, env = "SPARKSTAGE_MAX_BLOB_SIZE", default_value = "16GiB", value_parser = parse_size)]
    pub max_blob_size: u64,

    /// The most entries a bundle may have.
    #[arg(long, env = "SPARKSTAGE_MAX_BUNDLE_ENTRIES", default_value_t = 10_000)]
    pub max_bundle_entries: usize,

    /// An upload whose body sends nothing for this long is aborted with 408.
    #[arg(long, env = "SPARKSTAGE_BODY_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_idle_timeout: Duration,

    /// Time limit for requests that are not blob transfers (JSON calls).
    #[arg(long, env = "SPARKSTAGE_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Lifetime of a bundle created without a ttl.
    #[arg(long, env = "SPARKSTAGE_DEFAULT_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub default_ttl: Duration,

    /// The longest ttl a bundle may ask for.
    #[arg(long, env = "SPARKSTAGE_MAX_TTL", default_value = "90d", value_parser = humantime::parse_duration)]
    pub max_ttl: Duration,

    /// How long bundle metadata is cached in memory; bounds how long a bundle deleted through
    /// another replica stays readable here.
    #[arg(long, env = "SPARKSTAGE_BUNDLE_CACHE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub bundle_cache_ttl: Duration,

    /// Memory for blob content that all downloads share: each chunk in flight holds its share
    /// until the connection has written it, so memory stays flat whatever the number of
    /// connections (downloads past it wait their turn).
    #[arg(long, env = "SPARKSTAGE_DOWNLOAD_MEMORY", default_value = "16MiB", value_parser = parse_size)]
    pub download_memory: u64,

    /// A connection that accepts no bytes of an answer for this long is closed (a client that
    /// stopped reading gives back its share of --download-memory).
    #[arg(long, env = "SPARKSTAGE_SEND_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,

    /// The most connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "SPARKSTAGE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// How long a connection may take to send a request's headers, counted from when the server
    /// waits for them: a client that trickles its headers is cut off, and so is a keep-alive
    /// connection idle this long.
    #[arg(long, env = "SPARKSTAGE_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// The largest request head (request line and headers) accepted; larger ones get 431.
    #[arg(long, env = "SPARKSTAGE_MAX_HEADER_SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_size: u64,

    /// On SIGTERM, how long in-flight transfers may take to finish before the server exits.
    #[arg(long, env = "SPARKSTAGE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Do not fsync blobs before acknowledging them (local directory only; faster, but an
    /// acknowledged upload can be lost if the machine, not just the server, crashes).
    #[arg(long, env = "SPARKSTAGE_NO_FSYNC")]
    pub no_fsync: bool,

    /// Part size of streamed writes to storage. Default: 512KiB for a local directory, 8MiB for
    /// cloud stores (S3 needs at least 5MiB).
    #[arg(long, env = "SPARKSTAGE_UPLOAD_PART_SIZE", value_parser = parse_size)]
    pub upload_part_size: Option<u64>,

    /// Maven repositories `POST /v1/resolve` asks, in order, before a request's own
    /// (comma-separated in the environment); a mirror inside the cluster, or Maven Central.
    #[arg(long = "maven-repository", env = "SPARKSTAGE_MAVEN_REPOSITORIES", value_delimiter = ',',
          default_value = sparkstage_maven::resolver::MAVEN_CENTRAL)]
    pub maven_repositories: Vec<String>,

    /// Which repositories a resolve request (`spark-submit --repositories`) may add after the
    /// server's: `any` http(s) URL, `none`, or comma-separated URL prefixes (a shared cluster's
    /// mirrors). The server fetches from them from inside the cluster.
    #[arg(
        long,
        env = "SPARKSTAGE_MAVEN_REQUEST_REPOSITORIES",
        default_value = "any"
    )]
    pub maven_request_repositories: RequestRepositories,

    /// A file of `Authorization` header values for Maven repositories and http(s) sources, one
    /// `URL-prefix VALUE` per line (`https://nexus.internal/repository/ Bearer ...`): mount it
    /// from a Secret. Credentials in a repository URL itself come first.
    #[arg(long, env = "SPARKSTAGE_MAVEN_CREDENTIALS_FILE")]
    pub maven_credentials_file: Option<PathBuf>,

    /// A remote source (a bundle's source entry) without a digest is fetched again after this
    /// (a source with a digest never changes).
    #[arg(long, env = "SPARKSTAGE_SOURCE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub source_ttl: std::time::Duration,

    /// A source that failed answers every request with that failure for this long, so that a
    /// stampede of retries does not hammer a broken origin.
    #[arg(long, env = "SPARKSTAGE_SOURCE_ERROR_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub source_error_ttl: std::time::Duration,

    /// How long a remote source's blob is kept after it was last used, when no bundle refers
    /// to it (then garbage collection takes it).
    #[arg(long, env = "SPARKSTAGE_CACHE_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub cache_max_age: std::time::Duration,

    /// The most bytes of remote sources kept by the cache alone (no bundle refers to them):
    /// past it the least recently used go first (`100G`) [default: no bound but the age].
    #[arg(long, env = "SPARKSTAGE_CACHE_MAX_SIZE", value_parser = sparkstage_api::size::parse_size)]
    pub cache_max_size: Option<u64>,

    /// Where remote sources and uploads through the fork's API (`/api/v0`) are written before
    /// they are stored: it needs room for --spool-concurrency times --max-blob-size
    /// [default: `sparkstage-spool` in the temporary directory].
    #[arg(long, env = "SPARKSTAGE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// How many spool files are written at once (source fetches and fork uploads together;
    /// more wait their turn).
    #[arg(long, env = "SPARKSTAGE_SPOOL_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub spool_concurrency: u64,

    /// One source fetch's deadline, retries included.
    #[arg(long, env = "SPARKSTAGE_SOURCE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub source_timeout: std::time::Duration,

    /// Local cache of POMs and jars for resolutions (shared safely by concurrent resolutions).
    #[arg(
        long,
        env = "SPARKSTAGE_MAVEN_CACHE",
        default_value = "./sparkstage-maven-cache"
    )]
    pub maven_cache: PathBuf,

    /// Resolve from the Maven cache only, never the network.
    #[arg(long, env = "SPARKSTAGE_MAVEN_OFFLINE")]
    pub maven_offline: bool,

    /// How long a resolution's answer is kept for identical requests (ranges and repositories
    /// may change after that).
    #[arg(long, env = "SPARKSTAGE_RESOLVE_CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resolve_cache_ttl: Duration,

    #[command(flatten)]
    pub maven_limits: sparkstage_maven::limits::LimitsArgs,

    /// Track bundle owners through the Kubernetes API (in-cluster configuration, or the
    /// kubeconfig): a bundle lives while a pod of it exists, and goes --owner-grace after its last
    /// pod (or --initial-access-timeout after creation if no pod ever downloaded it).
    #[arg(long, env = "SPARKSTAGE_KUBERNETES")]
    pub kubernetes: bool,

    /// How often expired bundles (and, with owner tracking, unused and orphaned ones) are
    /// deleted.
    #[arg(long, env = "SPARKSTAGE_SWEEP_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,

    /// How often blobs that nothing references are garbage-collected.
    #[arg(long, env = "SPARKSTAGE_GC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_interval: Duration,

    /// How old an unreferenced blob must be before garbage collection deletes it (uploads wait
    /// this long for their bundle).
    #[arg(long, env = "SPARKSTAGE_GC_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub gc_grace: Duration,

    /// With owner tracking: a bundle no pod has downloaded, and of which no pod exists, is
    /// deleted this long after its creation.
    #[arg(long, env = "SPARKSTAGE_INITIAL_ACCESS_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub initial_access_timeout: Duration,

    /// With owner tracking: a downloaded bundle is deleted this long after its last pod is gone.
    #[arg(long, env = "SPARKSTAGE_OWNER_GRACE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub owner_grace: Duration,

    /// The most bytes of blobs the store may hold; an upload that would pass it gets 507
    /// `storage_full` before anything is written (units like 500GiB).
    #[arg(long, env = "SPARKSTAGE_MAX_STORAGE", value_parser = parse_size)]
    pub max_storage: Option<u64>,

    /// Serve the mutating admission webhook (`POST /v1/admission/pods`) over TLS on this address,
    /// such as 0.0.0.0:8443. Off by default; the staging API is not served there.
    #[arg(long, env = "SPARKSTAGE_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,

    /// The webhook's certificate chain (PEM), read again when it changes.
    #[arg(
        long,
        env = "SPARKSTAGE_WEBHOOK_CERT",
        default_value = "/etc/sparkstage/webhook/tls.crt"
    )]
    pub webhook_cert: PathBuf,

    /// The webhook's private key (PEM), read again when it changes.
    #[arg(
        long,
        env = "SPARKSTAGE_WEBHOOK_KEY",
        default_value = "/etc/sparkstage/webhook/tls.key"
    )]
    pub webhook_key: PathBuf,

    /// The server's URL as pods reach it (its Service), written into the init containers the
    /// webhook adds; needed for bundles.
    #[arg(long, env = "SPARKSTAGE_POD_SERVER_URL")]
    pub pod_server_url: Option<url::Url>,

    /// The init container's image, in pods the webhook mutates.
    #[arg(long, env = "SPARKSTAGE_INIT_IMAGE", default_value = sparkstage_injection::pod::DEFAULT_INIT_IMAGE)]
    pub init_image: String,

    /// The init container's imagePullPolicy [default: the cluster's].
    #[arg(long, env = "SPARKSTAGE_INIT_PULL_POLICY")]
    pub init_pull_policy: Option<String>,

    /// The server's own namespace (the downward API's metadata.namespace): its pods are never
    /// mutated.
    #[arg(long, env = "SPARKSTAGE_NAMESPACE")]
    pub namespace: Option<String>,

    /// With --kubernetes, pods fetch bundles with their own ServiceAccount token (checked with a
    /// TokenReview) instead of a Secret; only these ServiceAccounts' tokens are accepted
    /// (comma-separated) [default: any ServiceAccount of the bundle's namespace].
    #[arg(
        long,
        env = "SPARKSTAGE_POD_IDENTITY_SERVICE_ACCOUNTS",
        value_delimiter = ','
    )]
    pub pod_identity_service_accounts: Vec<String>,

    /// Log format.
    #[arg(long, env = "SPARKSTAGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The connection limits these flags set.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: self.header_read_timeout,
            send_timeout: self.send_timeout,
            max_header_bytes: usize::try_from(self.max_header_size).unwrap_or(usize::MAX),
        }
    }

    /// The upload token, read from the file or the environment; `None` when neither is set.
    pub fn read_upload_token(&self) -> anyhow::Result<Option<String>> {
        let token = match (&self.upload_token_file, &self.upload_token) {
            (Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "--upload-token-file {}: cannot read it: {e}",
                    path.display()
                )
            })?,
            (None, Some(token)) => token.clone(),
            (None, None) => return Ok(None),
        };
        let token = token.trim().to_owned();
        if token.len() < 16 {
            anyhow::bail!(
                "the upload token is {} characters long; use at least 16 random characters \
                 (for example: head -c 32 /dev/urandom | base64)",
                token.len()
            );
        }
        Ok(Some(token))
    }

    /// The `--maven-credentials-file`'s entries (none without one).
    pub fn read_maven_credentials(&self) -> anyhow::Result<Credentials> {
        match &self.maven_credentials_file {
            Some(path) => {
                Credentials::read(path).map_err(|e| anyhow::anyhow!("--maven-credentials-file {e}"))
            }
            None => Ok(Credentials::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let c = Config::try_parse_from(["sparkstage-server"]).map_err(|e| e.to_string());
        let c = c
            .as_ref()
            .map(|c| (c.listen.port(), c.max_blob_size, c.storage.as_str()));
        assert_eq!(c, Ok((10000, 16 << 30, "./sparkstage-data")));
    }
}
