//! The init container's command line: `sparkstage-init` parses it with this type, and the
//! submit hook's templates and the webhook write it with [`InitArgs::to_argv`], so a flag renamed
//! on one side is a compile error on the other.

use std::path::PathBuf;

use clap::Parser;
use sparkstage_api::Digest;
use sparkstage_api::bundles::validate_entry_name;
use sparkstage_api::size::parse_size;
use url::Url;

/// The URL schemes the init container fetches.
pub const SOURCE_SCHEMES: [&str; 11] = [
    "http", "https", "s3", "s3a", "gs", "az", "abfs", "abfss", "hdfs", "webhdfs", "swebhdfs",
];

/// One remote source of the init container: `scheme://host/path/name[?query][#sha256=<hex>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The URL to request, without the fragment.
    pub url: Url,
    pub sha256: Option<Digest>,
    /// The file name in the pod: the URL path's last segment.
    pub name: String,
}

/// Why a source cannot be fetched. Messages show the URL without credentials or query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("source #{index} is not a URL: {reason}")]
    NotAUrl { index: usize, reason: String },
    #[error(
        "source {shown}: unknown scheme {scheme:?}; use http(s)://, s3://, gs://, az://, hdfs:// or webhdfs://"
    )]
    Scheme { shown: String, scheme: String },
    #[error("source {shown}: the fragment must be #sha256=<64 hex characters>")]
    Fragment { shown: String },
    #[error("source {shown}: bad #sha256= fragment: {reason}")]
    Digest { shown: String, reason: String },
    #[error("source {shown}: no usable file name in the URL path: {reason}")]
    Name { shown: String, reason: String },
}

impl Source {
    /// Parses the `index`th source (counted from 0; messages count from 1).
    pub fn parse(index: usize, source: &str) -> Result<Self, SourceError> {
        let mut url = Url::parse(source).map_err(|e| SourceError::NotAUrl {
            index: index + 1,
            reason: e.to_string(),
        })?;
        let shown = sparkstage_api::shown::url(&url);
        if !SOURCE_SCHEMES.contains(&url.scheme()) {
            return Err(SourceError::Scheme {
                scheme: url.scheme().to_owned(),
                shown,
            });
        }
        let sha256 = match url.fragment() {
            None | Some("") => None,
            Some(fragment) => {
                let hex =
                    fragment
                        .strip_prefix("sha256=")
                        .ok_or_else(|| SourceError::Fragment {
                            shown: shown.clone(),
                        })?;
                let digest = format!("sha256:{}", hex.to_ascii_lowercase())
                    .parse::<Digest>()
                    .map_err(|e| SourceError::Digest {
                        shown: shown.clone(),
                        reason: e.to_string(),
                    })?;
                Some(digest)
            }
        };
        url.set_fragment(None);
        let name = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or_default()
            .to_owned();
        validate_entry_name(index, &name).map_err(|e| SourceError::Name {
            shown,
            reason: e.to_string(),
        })?;
        Ok(Self { url, sha256, name })
    }
}

/// Fetches a Spark application's jars and files into the pod before Spark starts.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "sparkstage-init", version, about)]
pub struct InitArgs {
    /// A JSON spec file (a mounted ConfigMap); flags and environment override its fields, and its
    /// sources come before the positional ones.
    #[arg(long, env = "SPARKSTAGE_SPEC")]
    pub spec: Option<PathBuf>,
    /// Where jars go [default: /var/spark-data/spark-jars].
    #[arg(long, env = "SPARKSTAGE_JARS_DIR")]
    pub jars_dir: Option<PathBuf>,
    /// Where every other file goes [default: /var/spark-data/spark-files].
    #[arg(long, env = "SPARKSTAGE_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// The staging server's base URL, for --bundle.
    #[arg(long, env = "SPARKSTAGE_SERVER")]
    pub server: Option<Url>,
    /// A staged bundle's id.
    #[arg(long, env = "SPARKSTAGE_BUNDLE")]
    pub bundle: Option<String>,
    /// A file holding the bundle's token (a mounted Secret).
    #[arg(long, env = "SPARKSTAGE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The deadline for the whole run, such as "5m" or "90s" [default: 5m].
    #[arg(long, env = "SPARKSTAGE_TIMEOUT")]
    pub timeout: Option<humantime::Duration>,
    /// Downloads at the same time [default: 8].
    #[arg(long, env = "SPARKSTAGE_PARALLELISM")]
    pub parallelism: Option<usize>,
    /// The NameNode's WebHDFS (HTTP) address for `hdfs://` sources, `host:port` or
    /// `http(s)://host:port` [default: the hdfs:// URL's host, port 9870].
    #[arg(long, env = "SPARKSTAGE_WEBHDFS_ADDRESS")]
    pub webhdfs_address: Option<String>,
    /// The WebHDFS `user.name` (simple authentication).
    #[arg(long, env = "HADOOP_USER_NAME")]
    pub hdfs_user: Option<String>,
    /// A file holding an HDFS delegation token (sent as `delegation=`, never printed).
    #[arg(long, env = "SPARKSTAGE_HDFS_DELEGATION_TOKEN_FILE")]
    pub hdfs_delegation_token_file: Option<PathBuf>,
    /// A header sent with every http(s) source, `Name: value` (repeatable; in the environment
    /// one per line). Values are never printed. For headers meant for one origin only, give the
    /// source as an object in the spec file.
    #[arg(long = "header", env = "SPARKSTAGE_HEADERS", value_delimiter = '\n')]
    pub headers: Vec<String>,
    /// A file of `Name: value` lines (a mounted Secret), added to --header.
    #[arg(long, env = "SPARKSTAGE_HEADER_FILE")]
    pub header_file: Option<PathBuf>,
    /// A node-local, content-addressed cache shared by the init containers of a node (a
    /// hostPath): files with a known sha256 are copied from it, verified, instead of downloaded,
    /// and downloads are added to it. Safe for concurrent use.
    #[arg(long, env = "SPARKSTAGE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The cache's size limit; the least recently used files are removed past it [default: 10GiB].
    #[arg(long, env = "SPARKSTAGE_CACHE_MAX_SIZE", value_parser = parse_size)]
    pub cache_max_size: Option<u64>,
    /// Attempts per file, the first one included, for transient failures [default: 10].
    #[arg(long, env = "SPARKSTAGE_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Time limit to connect to an origin [default: 10s].
    #[arg(long, env = "SPARKSTAGE_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<humantime::Duration>,
    /// A response body that sends nothing this long counts as stalled and is retried [default: 30s].
    #[arg(long, env = "SPARKSTAGE_READ_TIMEOUT")]
    pub read_timeout: Option<humantime::Duration>,
    /// A properties file of the 2017 fork's init container (`spark-init.properties`): its two
    /// staged resources (tar.gz archives, unpacked into the jars and files directories), its
    /// remote jars and files, its directories and timeout [default: /etc/spark-init/spark-init.properties
    /// when it exists and nothing else is asked for].
    #[arg(long, env = "SPARKSTAGE_FORK_PROPERTIES")]
    pub fork_properties: Option<PathBuf>,
    /// The most bytes one archive may expand to (`8G`, `500M`) [default: 8G].
    #[arg(long, env = "SPARKSTAGE_MAX_UNPACKED_SIZE", value_parser = parse_size)]
    pub max_unpacked_size: Option<u64>,
    /// http(s), s3, gs, az, hdfs, webhdfs or swebhdfs URLs, optionally ending in `#sha256=<hex>`; names ending in `.jar` go to the jars
    /// directory, others to the files directory. In the environment: comma-separated.
    #[arg(env = "SPARKSTAGE_SOURCES", value_delimiter = ',')]
    pub sources: Vec<String>,
}

impl InitArgs {
    /// Arguments with nothing set: every field at its default, for building a command line.
    pub fn none() -> Self {
        Self {
            spec: None,
            jars_dir: None,
            files_dir: None,
            server: None,
            bundle: None,
            token_file: None,
            timeout: None,
            parallelism: None,
            webhdfs_address: None,
            hdfs_user: None,
            hdfs_delegation_token_file: None,
            headers: Vec::new(),
            header_file: None,
            cache_dir: None,
            cache_max_size: None,
            max_attempts: None,
            connect_timeout: None,
            read_timeout: None,
            fork_properties: None,
            max_unpacked_size: None,
            sources: Vec::new(),
        }
    }

    /// The command line that [`InitArgs::parse`](clap::Parser::parse) reads back as `self`
    /// (without the program name). Every field is written: the destructuring below has no `..`,
    /// so a field added to the parser and not here does not compile.
    pub fn to_argv(&self) -> Vec<String> {
        let Self {
            spec,
            jars_dir,
            files_dir,
            server,
            bundle,
            token_file,
            timeout,
            parallelism,
            webhdfs_address,
            hdfs_user,
            hdfs_delegation_token_file,
            headers,
            header_file,
            cache_dir,
            cache_max_size,
            max_attempts,
            connect_timeout,
            read_timeout,
            fork_properties,
            max_unpacked_size,
            sources,
        } = self;
        let mut argv = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                argv.push(format!("--{name}"));
                argv.push(value);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        flag("spec", path(spec));
        flag("server", server.as_ref().map(Url::to_string));
        flag("bundle", bundle.clone());
        flag("token-file", path(token_file));
        flag("jars-dir", path(jars_dir));
        flag("files-dir", path(files_dir));
        flag("timeout", timeout.map(compact));
        flag("parallelism", parallelism.map(|n| n.to_string()));
        flag("webhdfs-address", webhdfs_address.clone());
        flag("hdfs-user", hdfs_user.clone());
        flag(
            "hdfs-delegation-token-file",
            path(hdfs_delegation_token_file),
        );
        for header in headers {
            flag("header", Some(header.clone()));
        }
        flag("header-file", path(header_file));
        flag("cache-dir", path(cache_dir));
        flag("cache-max-size", cache_max_size.map(|n| n.to_string()));
        flag("max-attempts", max_attempts.map(|n| n.to_string()));
        flag("connect-timeout", connect_timeout.map(compact));
        flag("read-timeout", read_timeout.map(compact));
        flag("fork-properties", path(fork_properties));
        flag(
            "max-unpacked-size",
            max_unpacked_size.map(|n| n.to_string()),
        );
        argv.extend(sources.iter().cloned());
        argv
    }
}

/// A duration as one number and a unit (`90s`, `5m`, `2h`, `1500ms`): what a person writes,
/// and what the parser reads back exactly.
fn compact(duration: humantime::Duration) -> String {
    let d: std::time::Duration = duration.into();
    let ms = d.as_millis();
    match ms {
        _ if !ms.is_multiple_of(1000) => format!("{ms}ms"),
        _ if ms.is_multiple_of(3_600_000) && ms > 0 => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) && ms > 0 => format!("{}m", ms / 60_000),
        _ => format!("{}s", ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[String]) -> InitArgs {
        InitArgs::try_parse_from(
            std::iter::once("sparkstage-init".to_owned()).chain(argv.iter().cloned()),
        )
        .expect("the written command line parses")
    }

    #[test]
    fn every_field_survives_the_command_line() {
        let full = InitArgs {
            spec: Some("/etc/sparkstage/spec.json".into()),
            jars_dir: Some("/j".into()),
            files_dir: Some("/f".into()),
            server: Some(
                "http://sparkstage.sparkstage-system:10000/"
                    .parse()
                    .expect("url"),
            ),
            bundle: Some("0123456789abcdef0123456789abcdef".into()),
            token_file: Some("/var/run/secrets/sparkstage/token".into()),
            timeout: Some("5m 30s".parse().expect("duration")),
            parallelism: Some(3),
            webhdfs_address: Some("nn:9870".into()),
            hdfs_user: Some("spark".into()),
            hdfs_delegation_token_file: Some("/t".into()),
            headers: vec!["X-A: 1".into(), "X-B: two words".into()],
            header_file: Some("/h".into()),
            cache_dir: Some("/cache".into()),
            cache_max_size: Some(5 << 30),
            max_attempts: Some(4),
            connect_timeout: Some("2s".parse().expect("duration")),
            read_timeout: Some("1m".parse().expect("duration")),
            fork_properties: Some("/etc/spark-init/spark-init.properties".into()),
            max_unpacked_size: Some(3 << 30),
            sources: vec![
                "https://h/a.jar".into(),
                format!("s3://b/c.txt#sha256={}", "ab".repeat(32)),
            ],
        };
        assert_eq!(parse(&full.to_argv()), full);
        assert_eq!(parse(&InitArgs::none().to_argv()), InitArgs::none());
        assert!(InitArgs::none().to_argv().is_empty());
        let written = |t: &str| compact(t.parse().expect("duration"));
        assert_eq!(written("90s"), "90s");
        assert_eq!(written("5m"), "5m");
        assert_eq!(written("2h"), "2h");
        assert_eq!(written("1500ms"), "1500ms");
        assert_eq!(written("0s"), "0s");
    }
}
