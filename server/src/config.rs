//! Command-line flags, each also an environment variable `SPARKSTAGE_...`.
//!
//! Secrets (the upload token) come only from a file or the environment and are never echoed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

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
}

/// Parses a byte size: a plain number of bytes, or a number with a unit (`512MiB`, `2GiB`,
/// `10MB`, `4k`). Binary units (KiB, MiB, GiB, TiB, and the single letters k, M, G, T) are
/// powers of 1024; decimal units (KB, MB, GB, TB) powers of 1000.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim();
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown size unit {unit:?}; use B, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write for example 512MiB or 16GiB"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn defaults_parse() {
        let c = Config::try_parse_from(["sparkstage-server"]).map_err(|e| e.to_string());
        let c = c
            .as_ref()
            .map(|c| (c.listen.port(), c.max_blob_size, c.storage.as_str()));
        assert_eq!(c, Ok((10000, 16 << 30, "./sparkstage-data")));
    }
}
