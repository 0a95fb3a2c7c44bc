//! What to fetch and where: command-line flags and `SPARKSTAGE_*` variables, merged with an
//! optional JSON spec file (see the crate documentation for its shape).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sparkstage_api::Digest;
use sparkstage_api::size::parse_size;
use url::Url;

pub use sparkstage_injection::layout::{DEFAULT_FILES_DIR, DEFAULT_JARS_DIR};
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_PARALLELISM: usize = 8;
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 10 << 30;

/// The command line, defined with the pod injection that writes it.
pub use sparkstage_injection::InitArgs as Args;

/// The spec file: the same fields as the flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub jars_dir: Option<PathBuf>,
    pub files_dir: Option<PathBuf>,
    pub server: Option<Url>,
    pub bundle: Option<String>,
    pub token_file: Option<PathBuf>,
    pub timeout: Option<String>,
    pub parallelism: Option<usize>,
    pub webhdfs_address: Option<String>,
    pub hdfs_user: Option<String>,
    pub hdfs_delegation_token_file: Option<PathBuf>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub header_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub cache_max_size: Option<String>,
    pub max_attempts: Option<u32>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    #[serde(default)]
    pub sources: Vec<SpecSource>,
}

/// A source in the spec file: a URL, or an object with the URL, its digest and headers for it
/// alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SpecSource {
    Url(String),
    Detailed(DetailedSource),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedSource {
    pub url: String,
    /// `<hex>` or `sha256:<hex>`.
    pub sha256: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A staged bundle to fetch.
#[derive(Debug, Clone)]
pub struct BundleSource {
    pub server: Url,
    pub id: String,
    pub token_file: PathBuf,
}

/// A staged tar.gz (a resource of the fork's API v0: a bundle of one archive entry), fetched
/// and unpacked into `dir`.
#[derive(Debug, Clone)]
pub struct ArchiveSource {
    pub bundle: BundleSource,
    pub dir: PathBuf,
}

/// A URL to fetch: http(s), or an object in S3, GCS or Azure.
#[derive(Debug, Clone)]
pub struct UrlSource {
    /// The directory, when not the one its name gives (the fork's remote jars and files).
    pub dir: Option<PathBuf>,
    /// The URL to request (without the fragment).
    pub url: Url,
    pub sha256: Option<Digest>,
    /// The file name, from the URL's last path segment.
    pub name: String,
    /// Request headers (http(s) only); their values are marked sensitive and never printed.
    pub headers: HeaderMap,
}

/// Everything settled, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub jars_dir: PathBuf,
    pub files_dir: PathBuf,
    pub bundle: Option<BundleSource>,
    pub archives: Vec<ArchiveSource>,
    pub urls: Vec<UrlSource>,
    pub unpack_limits: crate::unpack::Limits,
    pub timeout: Duration,
    pub parallelism: usize,
    pub hdfs: crate::webhdfs::HdfsConfig,
    pub cache: Option<crate::cache::CacheConfig>,
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Self> {
        Self::from_args_with(
            args,
            Path::new(sparkstage_injection::fork::DEFAULT_PROPERTIES),
        )
    }

    /// [`Config::from_args`], with the fork's default properties file at `fork_default`.
    pub fn from_args_with(args: Args, fork_default: &Path) -> Result<Self> {
        let spec = match &args.spec {
            Some(path) => read_spec(path)?,
            None => SpecFile::default(),
        };
        // The fork's properties: when named, or at the fork's path when nothing else is asked.
        let nothing_asked = args.spec.is_none()
            && args.bundle.is_none()
            && args.sources.iter().all(|s| s.trim().is_empty());
        let fork_path = args
            .fork_properties
            .clone()
            .or_else(|| (nothing_asked && fork_default.is_file()).then(|| fork_default.into()));
        let fork = match &fork_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the fork's properties file {}", path.display())
                })?;
                sparkstage_injection::fork::read(&text).map_err(|e| {
                    anyhow::anyhow!("the fork's properties file {}: {e}", path.display())
                })?
            }
            None => sparkstage_injection::fork::Properties::default(),
        };
        let timeout = match (args.timeout, &spec.timeout, fork.timeout) {
            (None, None, Some(fork)) => fork,
            (flag, spec, _) => duration("timeout", flag, spec, DEFAULT_TIMEOUT)?,
        };
        let connect_timeout = duration(
            "connect_timeout",
            args.connect_timeout,
            &spec.connect_timeout,
            Duration::from_secs(10),
        )?;
        let read_timeout = duration(
            "read_timeout",
            args.read_timeout,
            &spec.read_timeout,
            Duration::from_secs(30),
        )?;
        let max_attempts = args.max_attempts.or(spec.max_attempts).unwrap_or(10);
        if max_attempts == 0 {
            bail!("--max-attempts must be at least 1");
        }
        let cache_max_size = match (args.cache_max_size, &spec.cache_max_size) {
            (Some(size), _) => size,
            (None, Some(size)) => {
                parse_size(size).map_err(|e| anyhow::anyhow!("spec file: cache_max_size: {e}"))?
            }
            (None, None) => DEFAULT_CACHE_MAX_SIZE,
        };
        let cache = args
            .cache_dir
            .or(spec.cache_dir)
            .map(|root| crate::cache::CacheConfig {
                root,
                max_size: cache_max_size,
            });
        let mut common_headers = HeaderMap::new();
        for line in &args.headers {
            if !line.trim().is_empty() {
                let (name, value) = line.split_once(':').with_context(
                    || "--header wants `Name: value` (the value is not shown here)",
                )?;
                add_header(&mut common_headers, name, value)?;
            }
        }
        if let Some(path) = args.header_file.as_ref().or(spec.header_file.as_ref()) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the header file {}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let (name, value) = line.split_once(':').with_context(|| {
                    format!("{} line {}: want `Name: value`", path.display(), number + 1)
                })?;
                add_header(&mut common_headers, name, value)?;
            }
        }
        for (name, value) in &spec.headers {
            add_header(&mut common_headers, name, value)?;
        }
        let parallelism = args
            .parallelism
            .or(spec.parallelism)
            .unwrap_or(DEFAULT_PARALLELISM);
        if parallelism == 0 {
            bail!("--parallelism must be at least 1");
        }
        let server = args.server.or(spec.server);
        let id = args.bundle.or(spec.bundle);
        let token_file = args.token_file.or(spec.token_file);
        let bundle = match (server, id, token_file) {
            (Some(server), Some(id), Some(token_file)) => Some(BundleSource {
                server,
                id,
                token_file,
            }),
            (None, None, None) => None,
            _ => bail!(
                "a bundle needs all three of --server, --bundle and --token-file \
                 (SPARKSTAGE_SERVER, SPARKSTAGE_BUNDLE, SPARKSTAGE_TOKEN_FILE); some are missing"
            ),
        };
        let listed = spec.sources.iter().cloned().chain(
            args.sources
                .iter()
                .map(|s| SpecSource::Url(s.trim().to_owned()))
                .filter(|s| !matches!(s, SpecSource::Url(u) if u.is_empty())),
        );
        let mut urls = Vec::new();
        let mut count = 0;
        for (index, listed) in listed.enumerate() {
            count = index + 1;
            let source = match listed {
                SpecSource::Url(url) => parse_source(index, &url)?,
                SpecSource::Detailed(detail) => {
                    let mut url = detail.url.trim().to_owned();
                    if let Some(hex) = &detail.sha256 {
                        if url.contains('#') {
                            bail!(
                                "source #{}: give the sha256 either as a field or as #sha256=, not both",
                                index + 1
                            );
                        }
                        url = format!(
                            "{url}#sha256={}",
                            hex.strip_prefix("sha256:").unwrap_or(hex)
                        );
                    }
                    let mut source = parse_source(index, &url)?;
                    for (name, value) in &detail.headers {
                        add_header(&mut source.headers, name, value)?;
                    }
                    source
                }
            };
            urls.push(source);
        }
        let jars_dir = args
            .jars_dir
            .or(spec.jars_dir)
            .or(fork.jars_dir)
            .unwrap_or_else(|| DEFAULT_JARS_DIR.into());
        let files_dir = args
            .files_dir
            .or(spec.files_dir)
            .or(fork.files_dir)
            .unwrap_or_else(|| DEFAULT_FILES_DIR.into());
        // The fork's remote jars and files go to their directories whatever their names.
        for (list, dir) in [
            (&fork.remote_jars, &jars_dir),
            (&fork.remote_files, &files_dir),
        ] {
            for url in list {
                let mut source = parse_source(count, url)?;
                source.dir = Some(dir.clone());
                urls.push(source);
                count += 1;
            }
        }
        let mut archives = Vec::new();
        for (resource, dir) in [(&fork.jars, &jars_dir), (&fork.files, &files_dir)] {
            if let Some(resource) = resource {
                let server = fork.server.clone().with_context(|| {
                    format!(
                        "the fork's properties name the resource {} but no {} or {}",
                        resource.id,
                        sparkstage_injection::fork::INTERNAL_SERVER,
                        sparkstage_injection::fork::SERVER
                    )
                })?;
                archives.push(ArchiveSource {
                    bundle: BundleSource {
                        server,
                        id: resource.id.clone(),
                        token_file: resource.secret_file.clone(),
                    },
                    dir: dir.clone(),
                });
            }
        }
        for source in &mut urls {
            let http = matches!(source.url.scheme(), "http" | "https");
            if !source.headers.is_empty() && !http {
                bail!(
                    "source {}: headers apply to http(s) sources only",
                    sparkstage_api::shown::url(&source.url)
                );
            }
            if http {
                for (name, value) in &common_headers {
                    if !source.headers.contains_key(name) {
                        source.headers.insert(name, value.clone());
                    }
                }
            }
        }
        Ok(Self {
            jars_dir,
            files_dir,
            bundle,
            archives,
            urls,
            unpack_limits: crate::unpack::Limits {
                max_bytes: args
                    .max_unpacked_size
                    .unwrap_or(crate::unpack::Limits::default().max_bytes),
                ..crate::unpack::Limits::default()
            },
            timeout,
            parallelism,
            hdfs: crate::webhdfs::HdfsConfig {
                address: args.webhdfs_address.or(spec.webhdfs_address),
                user: args.hdfs_user.or(spec.hdfs_user),
                token_file: args
                    .hdfs_delegation_token_file
                    .or(spec.hdfs_delegation_token_file),
            },
            cache,
            max_attempts,
            connect_timeout,
            read_timeout,
        })
    }
}

/// A duration from a flag, else from the spec file (`field`), else `default`.
fn duration(
    field: &str,
    flag: Option<humantime::Duration>,
    spec: &Option<String>,
    default: Duration,
) -> Result<Duration> {
    Ok(match (flag, spec) {
        (Some(t), _) => t.into(),
        (None, Some(t)) => humantime::parse_duration(t)
            .with_context(|| format!("spec file: {field} {t:?} is not a duration like \"5m\""))?,
        (None, None) => default,
    })
}

/// Adds one header; its value is marked sensitive so that it never shows in debug output, and
/// never appears in error messages.
fn add_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<()> {
    let name = name.trim();
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| anyhow::anyhow!("{name:?} is not a valid header name"))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| anyhow::anyhow!("the value of header {name} is not a valid header value"))?;
    value.set_sensitive(true);
    headers.append(header, value);
    Ok(())
}

fn read_spec(path: &Path) -> Result<SpecFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the spec file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the spec file {} is not a valid spec", path.display()))
}

/// Parses one positional source (see [`sparkstage_injection::command::Source`]).
pub fn parse_source(index: usize, source: &str) -> Result<UrlSource> {
    let sparkstage_injection::command::Source { url, sha256, name } =
        sparkstage_injection::command::Source::parse(index, source)?;
    Ok(UrlSource {
        dir: None,
        url,
        sha256,
        name,
        headers: HeaderMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("sparkstage-init").chain(list.iter().copied()))
            .expect("arguments parse")
    }

    #[test]
    fn the_forks_properties_file_is_read_when_named_or_at_its_path() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let default = dir.path().join("spark-init.properties");
        use sparkstage_injection::fork::*;
        std::fs::write(
            &default,
            format!(
                "{SERVER}=http://rss:10000\n{JARS_RESOURCE}=0123456789abcdef0123456789abcdef\n\
                 {JARS_SECRET}=/mnt/secrets/spark-init/downloadJarsSecret\n\
                 {REMOTE_FILES}=https://h/lib.jar\n{JARS_DIR}=/fork/jars\n{TIMEOUT}=3\n"
            ),
        )?;
        // Nothing asked: the fork's path, when it exists.
        let config = Config::from_args_with(args(&[]), &default)?;
        assert_eq!(config.jars_dir, Path::new("/fork/jars"));
        assert_eq!(config.files_dir, Path::new(DEFAULT_FILES_DIR));
        assert_eq!(config.timeout, Duration::from_secs(180));
        let [archive] = &config.archives[..] else {
            panic!("{:?}", config.archives);
        };
        assert_eq!(archive.dir, Path::new("/fork/jars"));
        assert_eq!(archive.bundle.server.as_str(), "http://rss:10000/");
        // A remote file stays in the files directory, whatever its name.
        assert_eq!(
            config.urls[0].dir.as_deref(),
            Some(Path::new(DEFAULT_FILES_DIR))
        );
        // Flags win over the file; anything else asked leaves the default path alone.
        let config =
            Config::from_args_with(args(&["--jars-dir", "/j", "--timeout", "1m"]), &default)?;
        assert_eq!(
            (config.jars_dir.as_path(), config.timeout),
            (Path::new("/j"), Duration::from_secs(60))
        );
        let config = Config::from_args_with(args(&["https://h/a.jar"]), &default)?;
        assert!(config.archives.is_empty());
        let config = Config::from_args_with(args(&[]), &dir.path().join("absent"))?;
        assert!(config.archives.is_empty() && config.urls.is_empty());
        // Named: read whatever else is asked.
        let named = default.display().to_string();
        let config = Config::from_args_with(
            args(&["--fork-properties", &named, "https://h/a.jar"]),
            &default,
        )?;
        assert_eq!((config.archives.len(), config.urls.len()), (1, 2));
        Ok(())
    }

    #[test]
    fn defaults() {
        let config = Config::from_args(args(&[])).expect("config");
        assert_eq!(config.jars_dir, Path::new(DEFAULT_JARS_DIR));
        assert_eq!(config.files_dir, Path::new(DEFAULT_FILES_DIR));
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(config.parallelism, 8);
        assert!(config.bundle.is_none());
    }

    #[test]
    fn source_with_digest_fragment_and_query() {
        let hex = "ab".repeat(32);
        let s = parse_source(
            0,
            &format!("https://u:p@h/x/app.jar?sig=secret#sha256={hex}"),
        )
        .expect("source");
        assert_eq!(s.name, "app.jar");
        assert_eq!(s.sha256.map(|d| d.hex()), Some(hex));
        assert_eq!(s.url.fragment(), None);
        assert_eq!(sparkstage_api::shown::url(&s.url), "https://h/x/app.jar");
    }

    #[test]
    fn bad_sources_are_rejected() {
        assert!(parse_source(0, "https://h/").is_err());
        assert!(parse_source(0, "https://h/a/..").is_err());
        assert!(parse_source(0, "ftp://h/a").is_err());
        assert!(parse_source(0, "hdfs://h/a").is_ok());
        assert!(parse_source(0, "webhdfs://h:9870/a.jar").is_ok());
        assert!(parse_source(0, "s3://bucket/dir/a.jar").is_ok());
        assert!(parse_source(0, "https://h/a#md5=00").is_err());
        assert!(parse_source(0, "https://h/a#sha256=00").is_err());
    }

    #[test]
    fn partial_bundle_flags_are_an_error() {
        let e = Config::from_args(args(&["--server", "http://h", "--bundle", "b"]))
            .expect_err("token file missing");
        assert!(e.to_string().contains("--token-file"), "{e}");
    }

    #[test]
    fn spec_file_is_merged_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = dir.path().join("spec.json");
        std::fs::write(
            &spec,
            r#"{"jars_dir":"/j","files_dir":"/f","timeout":"90s","parallelism":2,
                "sources":["http://h/a.jar"]}"#,
        )
        .expect("write");
        let spec_arg = spec.to_str().expect("utf-8");
        let config = Config::from_args(args(&[
            "--spec",
            spec_arg,
            "--files-dir",
            "/g",
            "http://h/b.txt",
        ]))
        .expect("config");
        assert_eq!(config.jars_dir, Path::new("/j"));
        assert_eq!(config.files_dir, Path::new("/g"));
        assert_eq!(config.timeout, Duration::from_secs(90));
        assert_eq!(config.parallelism, 2);
        let names: Vec<_> = config.urls.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a.jar", "b.txt"]);

        std::fs::write(
            &spec,
            r#"{"webhdfs_address":"nn:9870","hdfs_user":"spark",
                "hdfs_delegation_token_file":"/t","sources":["hdfs://nn:8020/a.jar"]}"#,
        )
        .expect("write");
        let config = Config::from_args(args(&["--spec", spec_arg])).expect("config");
        assert_eq!(config.hdfs.address.as_deref(), Some("nn:9870"));
        assert_eq!(config.hdfs.user.as_deref(), Some("spark"));
        assert_eq!(config.hdfs.token_file.as_deref(), Some(Path::new("/t")));

        std::fs::write(&spec, r#"{"jar_dir":"/j"}"#).expect("write");
        assert!(Config::from_args(args(&["--spec", spec_arg])).is_err());
    }

    #[test]
    fn headers_from_flags_files_and_spec_objects_reach_http_sources_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header_file = dir.path().join("headers");
        std::fs::write(&header_file, "X-Api-Key: from-file\n\n").expect("write");
        let spec = dir.path().join("spec.json");
        let hex = "cd".repeat(32);
        std::fs::write(
            &spec,
            format!(
                r#"{{"sources":[
                  {{"url":"https://a.example/x/a.jar","sha256":"sha256:{hex}",
                    "headers":{{"Authorization":"Bearer only-a"}}}},
                  "s3://bucket/b.txt"
                ]}}"#
            ),
        )
        .expect("write");
        let config = Config::from_args(args(&[
            "--spec",
            spec.to_str().expect("utf-8"),
            "--header",
            "X-Trace: on",
            "--header-file",
            header_file.to_str().expect("utf-8"),
            "https://c.example/c.txt",
        ]))
        .expect("config");
        let a = &config.urls[0];
        assert_eq!(a.sha256.map(|d| d.hex()), Some(hex));
        assert_eq!(a.headers["authorization"], "Bearer only-a");
        assert_eq!(a.headers["x-trace"], "on");
        assert_eq!(a.headers["x-api-key"], "from-file");
        assert!(a.headers["authorization"].is_sensitive());
        assert!(
            config.urls[1].headers.is_empty(),
            "s3 sources get no headers"
        );
        let c = &config.urls[2];
        assert!(
            !c.headers.contains_key("authorization"),
            "per-source headers stay there"
        );
        assert_eq!(c.headers.len(), 2);
        // Debug output (and so any log of a Job) never shows a value.
        assert!(!format!("{:?}", a.headers).contains("only-a"));

        let e = Config::from_args(args(&["--header", "no colon here"])).expect_err("bad header");
        assert!(!e.to_string().contains("no colon here"), "{e}");
        std::fs::write(
            &spec,
            r#"{"sources":[{"url":"s3://b/k.jar","headers":{"A":"b"}}]}"#,
        )
        .expect("write");
        let e = Config::from_args(args(&["--spec", spec.to_str().expect("utf-8")]))
            .expect_err("headers on s3");
        assert!(e.to_string().contains("http(s) sources only"), "{e}");
    }

    #[test]
    fn retry_and_cache_settings() {
        let config = Config::from_args(args(&[
            "--max-attempts",
            "3",
            "--read-timeout",
            "2s",
            "--cache-dir",
            "/c",
            "--cache-max-size",
            "1GiB",
        ]))
        .expect("config");
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.read_timeout, Duration::from_secs(2));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert_eq!(
            config.cache,
            Some(crate::cache::CacheConfig {
                root: "/c".into(),
                max_size: 1 << 30
            })
        );
        assert!(Config::from_args(args(&["--max-attempts", "0"])).is_err());
    }
}
