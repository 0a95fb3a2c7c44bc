//! One resolution from coordinates to verified jars in the local cache: the repositories as a
//! [`PomSource`], either mode's graph, then the artifacts downloaded concurrently.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::coords::{Coordinate, Exclusion};
use crate::credentials::Credentials;
use crate::limits::Limits;
use crate::model::{Context, Flavor};
use crate::pom::Pom;
use crate::repo::{Fetched, RepoError, Repository, metadata_versions, snapshot_version};
use crate::resolve::{Models, PomSource, ResolveError, Resolved, resolve_maven};
use crate::spark::{builtin_exclusions, resolve_spark};

/// Maven Central, where `spark-submit --packages` looks by default.
pub const MAVEN_CENTRAL: &str = "https://repo1.maven.org/maven2/";

/// Which tool's result a resolution reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// `spark-submit --packages` (Apache Ivy 2.5).
    #[default]
    Spark,
    /// Maven Resolver (nearest wins), runtime scope.
    Maven,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spark" => Ok(Self::Spark),
            "maven" => Ok(Self::Maven),
            other => Err(format!("{other}: not a mode (spark or maven)")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Spark => "spark",
            Self::Maven => "maven",
        })
    }
}

/// A resolved jar, verified.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub coordinate: Coordinate,
    /// Where it is in the local cache; `None` when the shared cache keeps it instead
    /// ([`Resolver::with_shared`]).
    pub file: Option<PathBuf>,
    pub digest: sparkstage_api::Digest,
    pub size: u64,
    /// The coordinates from the request to the one that pulled this in.
    pub path: Vec<String>,
}

impl Artifact {
    /// As `POST /v1/resolve` answers it: Spark's file name, the digest, who pulled it in.
    pub fn to_wire(&self) -> sparkstage_api::resolve::ResolvedArtifact {
        sparkstage_api::resolve::ResolvedArtifact {
            coordinate: self.coordinate.to_string(),
            file_name: self.coordinate.spark_file_name(),
            digest: self.digest,
            size: self.size,
            pulled_by: self.path.clone(),
        }
    }
}

/// What a resolution found.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// The jars, in the order they were reached.
    pub artifacts: Vec<Artifact>,
    /// Artifacts that are not jars (`aar`, `pom`, ...), which Spark skips.
    pub skipped: Vec<Coordinate>,
    /// What went wrong without failing the resolution: repositories that could not be reached
    /// and were skipped after their first failure.
    pub warnings: Vec<String>,
}

/// Repositories, a shared HTTP client (connections are reused) and a bound on requests in flight.
pub struct Resolver {
    repositories: Vec<Repository>,
    http: reqwest::Client,
    limit: Arc<Semaphore>,
    concurrency: usize,
    context: Context,
    /// SNAPSHOT version directories' `maven-metadata.xml`, by repository and directory, read
    /// and kept for the resolution (`None`: the repository has none).
    snapshots: Mutex<HashMap<(usize, String), Option<String>>>,
    limits: Limits,
    /// Why each repository could not be reached, once it could not: it is not asked again in
    /// this resolution (as Maven's resolver blocks an offline repository), so an unreachable
    /// Maven Central costs one connection attempt, not one per POM.
    unreachable: Vec<Mutex<Option<String>>>,
}

/// Requests in flight at once, per resolution.
pub const DEFAULT_CONCURRENCY: usize = 16;

impl Resolver {
    /// `repositories` in the order they are asked; `cache` is the local cache directory, which
    /// concurrent resolutions (and processes) may share. Offline, only the cache is read.
    pub fn new(
        repositories: &[String],
        cache: &Path,
        offline: bool,
        concurrency: usize,
    ) -> Result<Self, RepoError> {
        let repositories = repositories
            .iter()
            .map(|url| Repository::new(url, None, cache).map(|r| r.offline(offline)))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(concurrency.max(1))
            .user_agent(concat!("sparkstage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RepoError::Fetch {
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(Self {
            unreachable: repositories.iter().map(|_| Mutex::new(None)).collect(),
            repositories,
            http,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            context: Context::default(),
            snapshots: Mutex::new(HashMap::new()),
            limits: Limits::default(),
        })
    }

    /// Resolves within `limits` (file sizes, values, modules, the deadline).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.repositories = std::mem::take(&mut self.repositories)
            .into_iter()
            .map(|r| r.with_limits(limits))
            .collect();
        self.limits = limits;
        self
    }

    /// Why repository `index` was found unreachable earlier in this resolution, if it was.
    fn skipped(&self, index: usize) -> Option<String> {
        self.unreachable[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes what `result` says of repository `index`: one that could not be connected to is
    /// skipped from now on.
    fn observe<T>(&self, index: usize, result: Result<T, RepoError>) -> Result<T, RepoError> {
        if let Err(RepoError::Unreachable { url, message }) = &result {
            let mut why = self.unreachable[index]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            why.get_or_insert_with(|| {
                format!("{url}: {message} (skipped for the rest of this resolution)")
            });
        }
        result
    }

    /// Reads and fills `shared` under the local cache ([`crate::shared`]).
    pub fn with_shared(mut self, shared: Option<Arc<dyn crate::shared::SharedCache>>) -> Self {
        self.repositories = std::mem::take(&mut self.repositories)
            .into_iter()
            .map(|r| r.with_shared(shared.clone()))
            .collect();
        self
    }

    /// Sends `credentials`' `Authorization` values to the repositories they cover (those whose
    /// URL carries no credentials of its own).
    pub fn with_credentials(mut self, credentials: &Credentials) -> Self {
        self.repositories = std::mem::take(&mut self.repositories)
            .into_iter()
            .map(|r| r.with_credentials(credentials))
            .collect();
        self
    }

    /// The machine the resolution stands for (profile activation, `${java.version}`, ...);
    /// Linux/amd64/Java 17 by default.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// The repositories' URLs (without credentials).
    pub fn repositories(&self) -> Vec<String> {
        self.repositories.iter().map(Repository::url).collect()
    }

    /// Resolves `roots` in `mode`; `exclusions` apply everywhere (in `spark` mode, with Spark's
    /// own). Every jar is downloaded (or found in the cache) and hashed.
    pub async fn resolve(
        &self,
        roots: &[Coordinate],
        exclusions: &[Exclusion],
        mode: Mode,
    ) -> Result<Resolution, ResolveError> {
        tokio::time::timeout(
            self.limits.deadline,
            self.resolve_within(roots, exclusions, mode),
        )
        .await
        .unwrap_or(Err(ResolveError::Deadline(self.limits.deadline)))
    }

    async fn resolve_within(
        &self,
        roots: &[Coordinate],
        exclusions: &[Exclusion],
        mode: Mode,
    ) -> Result<Resolution, ResolveError> {
        let graph = self.graph(roots, exclusions, mode).await?;
        // Every artifact is fetched and verified, as both tools do (a missing `aar` fails the
        // resolution too); only jars are reported as the class path.
        let fetched: Vec<Result<Option<Artifact>, ResolveError>> =
            futures::stream::iter(graph.into_iter().map(|r| self.artifact(r)))
                .buffered(self.concurrency)
                .collect()
                .await;
        let mut resolution = Resolution::default();
        let mut failures = Vec::new();
        for a in fetched {
            match a {
                Ok(Some(a)) if a.coordinate.extension == "jar" => resolution.artifacts.push(a),
                Ok(Some(a)) => resolution.skipped.push(a.coordinate),
                Ok(None) => {}
                Err(e) => failures.push(e),
            }
        }
        resolution.warnings = self
            .unreachable
            .iter()
            .filter_map(|why| why.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        match failures.len() {
            0 => Ok(resolution),
            1 => Err(failures.remove(0)),
            _ => Err(ResolveError::Several(failures)),
        }
    }

    /// The resolved graph, before any jar is downloaded.
    pub async fn graph(
        &self,
        roots: &[Coordinate],
        exclusions: &[Exclusion],
        mode: Mode,
    ) -> Result<Vec<Resolved>, ResolveError> {
        match mode {
            Mode::Spark => {
                let models =
                    Models::new(self, self.context.clone(), Flavor::Ivy).with_limits(self.limits);
                let mut all = builtin_exclusions();
                all.extend(exclusions.iter().cloned());
                resolve_spark(&models, roots, &all).await
            }
            Mode::Maven => {
                let models =
                    Models::new(self, self.context.clone(), Flavor::Maven).with_limits(self.limits);
                resolve_maven(&models, roots, exclusions).await
            }
        }
    }

    async fn artifact(&self, r: Resolved) -> Result<Option<Artifact>, ResolveError> {
        let path_text = if r.path.is_empty() {
            "the request".to_owned()
        } else {
            r.path.join(" -> ")
        };
        let repo_path = r.coordinate.path();
        let mut failure = None;
        for (index, repo) in self.repositories.iter().enumerate() {
            if let Some(why) = self.skipped(index) {
                failure = Some(why);
                continue;
            }
            let path = match self.path_in(index, repo, &r.coordinate).await {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.to_string());
                    continue;
                }
            };
            let _permit = self.limit.acquire().await;
            match self.observe(index, repo.artifact(&self.http, &path).await) {
                Ok(Some(cached)) => {
                    let digest = format!("sha256:{}", cached.sha256).parse().map_err(
                        |e: sparkstage_api::digest::DigestError| ResolveError::Source {
                            module: r.coordinate.to_string(),
                            message: e.to_string(),
                            path: path_text.clone(),
                        },
                    )?;
                    return Ok(Some(Artifact {
                        coordinate: r.coordinate,
                        file: cached.path,
                        digest,
                        size: cached.size,
                        path: r.path,
                    }));
                }
                Ok(None) => {}
                Err(e) => failure = Some(e.to_string()),
            }
        }
        if r.if_present && failure.is_none() {
            return Ok(None);
        }
        Err(match failure {
            Some(message) => ResolveError::Source {
                module: r.coordinate.to_string(),
                message,
                path: path_text,
            },
            None => ResolveError::MissingArtifact {
                artifact: format!("{} ({})", r.coordinate, repo_path),
                path: path_text,
            },
        })
    }
}

impl Resolver {
    /// The path of `coordinate`'s file in `repo`. A SNAPSHOT's file is the timestamped build
    /// (`a-1.0-20240102.030405-2.jar`) that its version directory's `maven-metadata.xml`
    /// names, as `mvn deploy` leaves a snapshot repository and as both Ivy and Maven read it;
    /// without that file, the plain `-SNAPSHOT` name (a non-unique snapshot). The metadata is
    /// kept for the rest of the resolution once read (two files of one SNAPSHOT asked for at the
    /// same moment may both read it).
    async fn path_in(
        &self,
        index: usize,
        repo: &Repository,
        coordinate: &Coordinate,
    ) -> Result<String, RepoError> {
        let plain = coordinate.path();
        if !coordinate.version.ends_with("-SNAPSHOT") {
            return Ok(plain);
        }
        let dir = plain
            .rsplit_once('/')
            .map(|(d, _)| d.to_owned())
            .unwrap_or_default();
        let key = (index, dir.clone());
        let known = self
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let xml = match known {
            Some(xml) => xml,
            None => {
                let metadata = format!("{dir}/maven-metadata.xml");
                let fetched = {
                    let _permit = self.limit.acquire().await;
                    self.observe(index, repo.fetch_fresh(&self.http, &metadata).await)?
                };
                let xml = match fetched {
                    Fetched::Found(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                    Fetched::Missing => None,
                };
                self.snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, xml.clone());
                xml
            }
        };
        let Some(xml) = xml else {
            return Ok(plain);
        };
        let unique = snapshot_version(
            &xml,
            &coordinate.version,
            &coordinate.extension,
            coordinate.classifier.as_deref(),
        )
        .map_err(|e| RepoError::Fetch {
            url: format!("{}{dir}/maven-metadata.xml", repo.url()),
            message: format!("not readable metadata: {e}"),
        })?;
        Ok(match unique {
            Some(version) => {
                let timestamped = Coordinate {
                    version,
                    ..coordinate.clone()
                };
                format!("{dir}/{}", timestamped.file_name())
            }
            None => plain,
        })
    }
}

impl PomSource for Resolver {
    async fn pom(&self, group: &str, artifact: &str, version: &str) -> Result<Option<Pom>, String> {
        let coordinate = Coordinate {
            group: group.to_owned(),
            artifact: artifact.to_owned(),
            version: version.to_owned(),
            extension: "pom".to_owned(),
            classifier: None,
        };
        let mut failure = None;
        for (index, repo) in self.repositories.iter().enumerate() {
            if let Some(why) = self.skipped(index) {
                failure = Some(why);
                continue;
            }
            let path = match self.path_in(index, repo, &coordinate).await {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.to_string());
                    continue;
                }
            };
            let fetched = {
                let _permit = self.limit.acquire().await;
                self.observe(index, repo.fetch(&self.http, &path).await)
            };
            match fetched {
                Ok(Fetched::Found(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return Pom::parse(&text)
                        .map(Some)
                        .map_err(|e| format!("{}{path}: {e}", repo.url()));
                }
                Ok(Fetched::Missing) => {}
                Err(e) => failure = Some(e.to_string()),
            }
        }
        match failure {
            Some(message) => Err(message),
            None => Ok(None),
        }
    }

    async fn versions(&self, group: &str, artifact: &str) -> Result<Vec<String>, String> {
        let path = format!("{}/{artifact}/maven-metadata.xml", group.replace('.', "/"));
        let mut all: Vec<String> = Vec::new();
        for (index, repo) in self.repositories.iter().enumerate() {
            if self.skipped(index).is_some() {
                continue;
            }
            let fetched = {
                let _permit = self.limit.acquire().await;
                self.observe(index, repo.fetch_fresh(&self.http, &path).await)
            };
            if let Ok(Fetched::Found(bytes)) = fetched {
                for v in metadata_versions(&String::from_utf8_lossy(&bytes))
                    .map_err(|e| format!("{}{path}: not readable metadata: {e}", repo.url()))?
                {
                    if !all.contains(&v) {
                        all.push(v);
                    }
                }
            }
        }
        Ok(all)
    }
}
