//! Repositories: Debian's real Maven repository (/usr/share/maven-repo) served over HTTP on
//! loopback and read as `file://`; hand-made checksum files, right and wrong; concurrent
//! fetches of one artifact into one cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use sha2::{Digest as _, Sha256};
use sparkstage_maven::pom::Pom;
use sparkstage_maven::repo::{Fetched, RepoError, Repository};

const DEBIAN: &str = "/usr/share/maven-repo";
const POM: &str = "commons-io/commons-io/2.11.0/commons-io-2.11.0.pom";
const JAR: &str = "commons-io/commons-io/2.11.0/commons-io-2.11.0.jar";

/// Serves `root` read-only over HTTP, as a repository manager would.
async fn serve(root: PathBuf) -> Result<String> {
    let app = Router::new().route(
        "/{*path}",
        get(move |UrlPath(path): UrlPath<String>| {
            let root = root.clone();
            async move {
                if path.split('/').any(|p| p == "..") {
                    return StatusCode::BAD_REQUEST.into_response();
                }
                match tokio::fs::read(root.join(&path)).await {
                    Ok(bytes) => bytes.into_response(),
                    Err(_) => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn sha256_file(path: &Path) -> Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debians_repository_over_http_and_file() -> Result<()> {
    ensure!(
        Path::new(DEBIAN).join(POM).exists(),
        "{DEBIAN}/{POM} is missing: install Debian's maven (scripts/test-deps.sh)"
    );
    let http = reqwest::Client::new();
    let cache = tempfile::tempdir()?;
    let served = serve(PathBuf::from(DEBIAN)).await?;
    for url in [served.as_str(), &format!("file://{DEBIAN}")] {
        let repo = Repository::new(url, None, cache.path())?;
        let Fetched::Found(pom) = repo.fetch(&http, POM).await? else {
            anyhow::bail!("{url}: the POM is missing");
        };
        let pom = Pom::parse(&String::from_utf8(pom)?)?;
        assert_eq!(pom.artifact.as_deref(), Some("commons-io"));
        let jar = repo
            .artifact(&http, JAR)
            .await?
            .context("the jar is missing")?
            .path
            .context("no shared cache: the jar is in the local one")?;
        assert_eq!(
            sha256_file(&jar)?,
            sha256_file(&Path::new(DEBIAN).join(JAR))?
        );
        assert!(matches!(
            repo.fetch(&http, "no/such/1/such-1.pom").await?,
            Fetched::Missing
        ));
        assert!(
            repo.artifact(&http, "no/such/1/such-1.jar")
                .await?
                .is_none()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_checked_where_published_and_concurrent_fetches_share_the_cache() -> Result<()>
{
    let root = tempfile::tempdir()?;
    let dir = root.path().join("g/a/1");
    std::fs::create_dir_all(&dir)?;
    let jar = vec![42u8; 3 << 20];
    std::fs::write(dir.join("a-1.jar"), &jar)?;
    std::fs::write(
        dir.join("a-1.jar.sha256"),
        format!("{}  a-1.jar\n", hex::encode(Sha256::digest(&jar))),
    )?;
    std::fs::write(dir.join("b-1.jar"), b"tampered")?;
    std::fs::write(
        dir.join("b-1.jar.sha1"),
        "0000000000000000000000000000000000000000",
    )?;
    std::fs::write(dir.join("a-1.pom"), "<project/>")?;
    std::fs::write(
        dir.join("a-1.pom.sha1"),
        "ffffffffffffffffffffffffffffffffffffffff",
    )?;
    let url = serve(root.path().to_path_buf()).await?;
    let http = reqwest::Client::new();
    let cache = tempfile::tempdir()?;
    let repo = Repository::new(&url, None, cache.path())?;

    let fetches = (0..8).map(|_| repo.artifact(&http, "g/a/1/a-1.jar"));
    let results = futures::future::join_all(fetches).await;
    for result in results {
        let path = result?
            .context("missing")?
            .path
            .context("in the local cache")?;
        assert_eq!(std::fs::read(path)?, jar);
    }
    let e = repo
        .artifact(&http, "g/a/1/b-1.jar")
        .await
        .expect_err("bad sha1");
    assert!(matches!(e, RepoError::Checksum { .. }), "{e}");
    let e = match repo.fetch(&http, "g/a/1/a-1.pom").await {
        Err(e) => e,
        Ok(_) => anyhow::bail!("a POM with a wrong checksum was accepted"),
    };
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // Nothing but verified files in the cache: no temporary file, no tampered jar.
    let mut names = Vec::new();
    for entry in walk(cache.path()) {
        names.push(
            entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(names, ["a-1.jar"]);
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
