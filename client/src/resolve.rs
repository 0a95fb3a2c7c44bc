//! `sparkstage resolve`: Maven coordinates to the jars Spark would put on its class path, in
//! this process or through the staging server (which keeps the jars as blobs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sparkstage_api::resolve::{ResolveRequest, ResolveResponse, ResolvedArtifact};
use sparkstage_maven::coords::{Coordinate, Exclusion};
use sparkstage_maven::credentials::Credentials;
use sparkstage_maven::limits::Limits;
use sparkstage_maven::resolver::{DEFAULT_CONCURRENCY, Mode, Resolver};

use crate::stage::ServerClient;

/// The local cache of in-process resolutions: `$SPARKSTAGE_MAVEN_CACHE`, else
/// `~/.cache/sparkstage/maven`.
pub fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPARKSTAGE_MAVEN_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("sparkstage/maven")
}

/// Checks a request's coordinates, exclusions and mode before anything is fetched.
pub fn validate(request: &ResolveRequest) -> Result<(Vec<Coordinate>, Vec<Exclusion>, Mode)> {
    anyhow::ensure!(
        !request.coordinates.is_empty(),
        "no coordinates to resolve (group:artifact:version)"
    );
    let coordinates = request
        .coordinates
        .iter()
        .map(|c| c.parse::<Coordinate>())
        .collect::<Result<Vec<_>, _>>()?;
    let exclusions = request
        .exclusions
        .iter()
        .map(|e| e.parse::<Exclusion>())
        .collect::<Result<Vec<_>, _>>()?;
    let mode = request
        .mode
        .as_deref()
        .unwrap_or("spark")
        .parse::<Mode>()
        .map_err(anyhow::Error::msg)?;
    Ok((coordinates, exclusions, mode))
}

/// Where an in-process resolution reads: `repositories` (asked before the request's own),
/// `Authorization` values for them, the local cache, whether it may go to the network.
pub struct Local<'a> {
    pub repositories: &'a [String],
    pub credentials: &'a Credentials,
    pub cache: &'a Path,
    pub offline: bool,
    pub limits: Limits,
}

/// Resolves in this process: `local`'s repositories first, then the request's.
pub async fn resolve_locally(
    request: &ResolveRequest,
    local: &Local<'_>,
) -> Result<ResolveResponse> {
    let (coordinates, exclusions, mode) = validate(request)?;
    let mut repositories = local.repositories.to_vec();
    for r in &request.repositories {
        if !repositories.contains(r) {
            repositories.push(r.clone());
        }
    }
    let resolver = Resolver::new(
        &repositories,
        local.cache,
        local.offline,
        DEFAULT_CONCURRENCY,
    )?
    .with_credentials(local.credentials)
    .with_limits(local.limits);
    let resolution = resolver.resolve(&coordinates, &exclusions, mode).await?;
    for warning in &resolution.warnings {
        eprintln!("sparkstage: warning: {warning}");
    }
    Ok(ResolveResponse {
        mode: mode.to_string(),
        artifacts: resolution.artifacts.iter().map(|a| a.to_wire()).collect(),
        skipped: resolution.skipped.iter().map(ToString::to_string).collect(),
    })
}

/// Resolves through the staging server.
pub async fn resolve_on_server(
    client: &ServerClient,
    request: &ResolveRequest,
) -> Result<ResolveResponse> {
    validate(request)?;
    client.resolve(request).await
}

/// One `group:artifact:version[:classifier]` per line, sorted.
pub fn render_list(response: &ResolveResponse) -> String {
    sorted_lines(response.artifacts.iter().map(|a| a.coordinate.as_str()))
}

/// The jars' file names as Spark names them, sorted.
pub fn render_files(response: &ResolveResponse) -> String {
    sorted_lines(response.artifacts.iter().map(|a| a.file_name.as_str()))
}

fn sorted_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut lines: Vec<&str> = lines.collect();
    lines.sort_unstable();
    lines.dedup();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The jars as a tree: each under the coordinate that pulled it in.
pub fn render_tree(response: &ResolveResponse) -> String {
    let mut children: BTreeMap<&str, Vec<&ResolvedArtifact>> = BTreeMap::new();
    for a in &response.artifacts {
        let parent = a.pulled_by.last().map_or("", String::as_str);
        children.entry(parent).or_default().push(a);
    }
    fn walk(
        out: &mut String,
        children: &BTreeMap<&str, Vec<&ResolvedArtifact>>,
        parent: &str,
        depth: usize,
    ) {
        for a in children.get(parent).into_iter().flatten() {
            out.push_str(&"  ".repeat(depth));
            out.push_str(&a.coordinate);
            out.push('\n');
            // A module's own key is its group:artifact:version (no classifier).
            let key = a
                .coordinate
                .splitn(4, ':')
                .take(3)
                .collect::<Vec<_>>()
                .join(":");
            if depth < 64 && key != parent {
                walk(out, children, &key, depth + 1);
            }
        }
    }
    let mut out = String::new();
    walk(&mut out, &children, "", 0);
    out
}
