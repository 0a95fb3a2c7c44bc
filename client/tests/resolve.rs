//! `sparkstage resolve` in-process and through the real server (`POST /v1/resolve`), against a
//! small hand-made repository served on loopback: the two modes, identical concurrent requests
//! sharing one resolution, jars stored as blobs, errors that name the missing artifact and the
//! path that pulled it in. (Correctness against the real spark-submit and mvn is
//! maven/tests/golden.rs.)

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sha2::{Digest as _, Sha256};
use sparkstage_api::resolve::{ResolveRequest, ResolveResponse};
use sparkstage_tests::hostile_repo::HostileRepo;
use sparkstage_tests::maven_repo::MavenRepo;
use sparkstage_tests::rss::{peak_kib, run_measured};
use sparkstage_tests::server::Server;

const UPLOAD_TOKEN: &str = "resolve-upload-token-0123456789";

/// Writes `group:artifact:version` with `deps` (`(artifact, version)` in group `t`) and,
/// unless `jar` is false, a jar whose bytes name it.
fn module(
    repo: &Path,
    artifact: &str,
    version: &str,
    deps: &[(&str, &str)],
    jar: bool,
) -> Result<()> {
    let dir = repo.join("t").join(artifact).join(version);
    std::fs::create_dir_all(&dir)?;
    let deps: String = deps
        .iter()
        .map(|(a, v)| {
            format!(
                "<dependency><groupId>t</groupId><artifactId>{a}</artifactId>\
                 <version>{v}</version></dependency>"
            )
        })
        .collect();
    std::fs::write(
        dir.join(format!("{artifact}-{version}.pom")),
        format!(
            "<project><modelVersion>4.0.0</modelVersion><groupId>t</groupId>\
             <artifactId>{artifact}</artifactId><version>{version}</version>\
             <dependencies>{deps}</dependencies></project>"
        ),
    )?;
    if jar {
        std::fs::write(
            dir.join(format!("{artifact}-{version}.jar")),
            format!("jar of t:{artifact}:{version}"),
        )?;
    }
    Ok(())
}

/// lib -> x:2.0; top -> x:1.0 and lib; broken -> nojar (a POM without its jar).
fn repository(root: &Path) -> Result<()> {
    module(root, "x", "1.0", &[], true)?;
    module(root, "x", "2.0", &[], true)?;
    module(root, "lib", "1", &[("x", "2.0")], true)?;
    module(root, "broken", "1", &[("lib", "1"), ("nojar", "1")], true)?;
    module(root, "nojar", "1", &[], false)?;
    Ok(())
}

async fn sparkstage(args: &[&str], work: &Path, repo: &str) -> Result<Output> {
    Ok(sparkstage_command(args, work, repo).output().await?)
}

/// `sparkstage ARGS` in `work`, with `repo` as its repositories and no other `SPARKSTAGE_`
/// setting from the environment.
fn sparkstage_command(args: &[&str], work: &Path, repo: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"));
    command.args(args).current_dir(work);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPARKSTAGE_") {
            command.env_remove(&name);
        }
    }
    command
        .env("SPARKSTAGE_UPLOAD_TOKEN", UPLOAD_TOKEN)
        .env("SPARKSTAGE_MAVEN_REPOSITORIES", repo)
        .env("SPARKSTAGE_MAVEN_CACHE", work.join("maven-cache"));
    command
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `POST /v1/resolve` on `server` with the upload token.
async fn post_resolve(
    http: &reqwest::Client,
    server: &Server,
    request: &serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{}/v1/resolve", server.url()))
        .bearer_auth(UPLOAD_TOKEN)
        .json(request)
        .send()
        .await
}

async fn server(work: &Path, repo: &str) -> Result<Server> {
    server_with(work, repo, &[]).await
}

async fn server_with(work: &Path, repo: &str, more: &[&str]) -> Result<Server> {
    server_on(work, repo, ("memory://", "server-maven-cache"), more, &[]).await
}

/// A server on `storage.0` with its local Maven cache in `work/<storage.1>`.
async fn server_on(
    work: &Path,
    repo: &str,
    (storage, local_cache): (&str, &str),
    more: &[&str],
    env: &[(String, String)],
) -> Result<Server> {
    let token_file = work.join("upload.token");
    std::fs::write(&token_file, UPLOAD_TOKEN)?;
    let cache = work.join(local_cache);
    Server::start(
        &[
            "--storage",
            storage,
            "--upload-token-file",
            token_file.to_str().context("utf-8")?,
            "--maven-repository",
            repo,
            "--maven-cache",
            cache.to_str().context("utf-8")?,
        ]
        .into_iter()
        .chain(more.iter().copied())
        .collect::<Vec<_>>(),
        env,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_in_process_and_through_the_server() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;

    // The user pins x:1.0; lib wants x:2.0. Ivy (spark) takes the latest, Maven the nearest.
    let spark = sparkstage(&["resolve", "t:x:1.0,t:lib:1"], work.path(), &repo.url).await?;
    ensure!(spark.status.success(), "resolve failed: {}", stderr(&spark));
    assert_eq!(stdout(&spark), "t:lib:1\nt:x:2.0\n");
    let maven = sparkstage(
        &["resolve", "--mode", "maven", "t:x:1.0", "t:lib:1"],
        work.path(),
        &repo.url,
    )
    .await?;
    ensure!(maven.status.success(), "resolve failed: {}", stderr(&maven));
    assert_eq!(stdout(&maven), "t:lib:1\nt:x:1.0\n");
    let tree = sparkstage(&["resolve", "--tree", "t:lib:1"], work.path(), &repo.url).await?;
    assert_eq!(stdout(&tree), "t:lib:1\n  t:x:2.0\n");
    let files = sparkstage(
        &["resolve", "--format", "files", "t:lib:1"],
        work.path(),
        &repo.url,
    )
    .await?;
    assert_eq!(stdout(&files), "t_lib-1.jar\nt_x-2.0.jar\n");

    // Offline, from the cache the first runs filled; and nothing in it for an unknown module.
    let offline = sparkstage(&["resolve", "--offline", "t:lib:1"], work.path(), &repo.url).await?;
    ensure!(
        offline.status.success(),
        "offline failed: {}",
        stderr(&offline)
    );
    assert_eq!(stdout(&offline), "t:lib:1\nt:x:2.0\n");
    let requests = repo.requests().len();
    let missing = sparkstage(&["resolve", "--offline", "t:x:9"], work.path(), &repo.url).await?;
    ensure!(
        !missing.status.success(),
        "an uncached module resolved offline"
    );
    assert_eq!(
        repo.requests().len(),
        requests,
        "offline went to the network"
    );

    // Through the server: the same answer.
    let server = server(work.path(), &repo.url).await?;
    let url = server.url();
    let via = sparkstage(
        &["--server", &url, "resolve", "t:x:1.0,t:lib:1"],
        work.path(),
        &repo.url,
    )
    .await?;
    ensure!(
        via.status.success(),
        "server resolve failed: {}",
        stderr(&via)
    );
    assert_eq!(stdout(&via), stdout(&spark));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_shares_resolutions_stores_jars_and_names_what_is_missing() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::from_millis(20)).await?;
    let server = server(work.path(), &repo.url).await?;
    let http = reqwest::Client::new();
    let post = |request: serde_json::Value| {
        let (http, server) = (&http, &server);
        async move { post_resolve(http, server, &request).await }
    };

    // Four identical requests at once: one resolution, every POM fetched once.
    let request = serde_json::json!({"coordinates": ["t:lib:1", "t:x:1.0"]});
    let answers = futures::future::join_all((0..4).map(|_| post(request.clone()))).await;
    let mut bodies = Vec::new();
    for a in answers {
        let a = a?;
        ensure!(a.status().is_success(), "HTTP {}", a.status());
        bodies.push(a.json::<ResolveResponse>().await?);
    }
    ensure!(bodies.iter().all(|b| *b == bodies[0]), "answers differ");
    assert_eq!(
        server
            .metric("sparkstage_resolutions_total{outcome=\"resolved\"}")
            .await?,
        1
    );
    assert_eq!(repo.count("lib-1.pom"), 1);
    // A later identical request is answered from the kept answer, without the repository.
    let before = repo.requests().len();
    let again: ResolveResponse = post(request.clone()).await?.json().await?;
    assert_eq!(again, bodies[0]);
    assert_eq!(repo.requests().len(), before);
    assert_eq!(
        server
            .metric("sparkstage_resolutions_total{outcome=\"cached\"}")
            .await?,
        1
    );

    // The jars are blobs now, with the digests of the repository's files.
    let body = &bodies[0];
    let names: Vec<&str> = body
        .artifacts
        .iter()
        .map(|a| a.file_name.as_str())
        .collect();
    assert_eq!(names, ["t_lib-1.jar", "t_x-2.0.jar"]);
    for a in &body.artifacts {
        let jar = root.join(format!(
            "t/{0}/{1}/{0}-{1}.jar",
            a.coordinate.split(':').nth(1).context("artifact")?,
            a.coordinate.split(':').nth(2).context("version")?
        ));
        let bytes = std::fs::read(&jar)?;
        assert_eq!(a.digest.hex(), hex::encode(Sha256::digest(&bytes)));
        assert_eq!(a.size, bytes.len() as u64);
        let head = http
            .head(format!("{}/v1/blobs/{}", server.url(), a.digest))
            .bearer_auth(UPLOAD_TOKEN)
            .send()
            .await?;
        ensure!(
            head.status().is_success(),
            "blob {} not stored: {}",
            a.digest,
            head.status()
        );
    }
    assert_eq!(body.artifacts[1].pulled_by, ["t:lib:1"]);

    // A missing jar: 422 naming the artifact, its repository path and who pulled it in.
    let failed = post(serde_json::json!({"coordinates": ["t:broken:1"], "mode": "maven"})).await?;
    assert_eq!(failed.status(), 422);
    let message = failed.text().await?;
    for part in [
        "t:nojar:1",
        "t/nojar/1/nojar-1.jar",
        "pulled in by t:broken:1",
    ] {
        ensure!(message.contains(part), "{part} not in {message}");
    }
    // Bad input is refused before anything is fetched.
    for (request, code) in [
        (
            serde_json::json!({"coordinates": ["t:lib"]}),
            "bad_coordinate",
        ),
        (serde_json::json!({"coordinates": []}), "no_coordinates"),
        (
            serde_json::json!({"coordinates": ["t:lib:1"], "repositories": ["file:///etc/"]}),
            "bad_repository",
        ),
        (
            serde_json::json!({"coordinates": ["t:lib:1"], "mode": "gradle"}),
            "bad_mode",
        ),
    ] {
        let answer = post(request.clone()).await?;
        assert_eq!(answer.status(), 400, "{request}");
        ensure!(answer.text().await?.contains(code), "{request}: not {code}");
    }
    // Without the upload token: 401.
    let anonymous = http
        .post(format!("{}/v1/resolve", server.url()))
        .json(&ResolveRequest {
            coordinates: vec!["t:lib:1".into()],
            repositories: vec![],
            exclusions: vec![],
            mode: None,
        })
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    Ok(())
}

/// The repository served, a server that asks it, and an application directory with `job.py`.
async fn submit_fixture(work: &Path) -> Result<(MavenRepo, Server, std::path::PathBuf)> {
    let root = work.join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;
    let server = server(work, &repo.url).await?;
    let app = work.join("app");
    std::fs::create_dir_all(&app)?;
    std::fs::write(app.join("job.py"), "print('hello')\n")?;
    Ok((repo, server, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_resolves_packages_on_the_server_and_spark_runs_no_ivy() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (repo, server, app) = submit_fixture(work.path()).await?;
    std::fs::write(
        app.join("spark.properties"),
        "spark.jars.excludes=t:nothing\nspark.jars=local:///opt/extra.jar\n",
    )?;
    let url = server.url();
    let output = sparkstage(
        &[
            "--server",
            &url,
            "submit",
            "--dry-run",
            "--",
            "spark-submit",
            "--master",
            "k8s://https://kubernetes.default.svc",
            "--deploy-mode",
            "cluster",
            "--properties-file",
            "spark.properties",
            "--packages",
            "t:x:1.0,t:lib:1",
            "--repositories",
            &repo.url,
            "job.py",
        ],
        &app,
        &repo.url,
    )
    .await?;
    let (out, err) = (stdout(&output), stderr(&output));
    ensure!(output.status.success(), "{err}");
    ensure!(
        err.contains("3 files (2 resolved from --packages), 1 uploaded"),
        "{err}"
    );
    let command = out
        .lines()
        .find(|l| l.starts_with("spark-submit"))
        .context("no command in the dry run")?;
    for gone in ["--packages", "--repositories", "t:lib:1"] {
        ensure!(!command.contains(gone), "{gone} still in {command}");
    }
    for wanted in [
        "spark.jars=local:///opt/extra.jar,local:///var/spark-data/spark-jars/t_lib-1.jar,local:///var/spark-data/spark-jars/t_x-2.0.jar",
        "spark.jars.excludes=",
        "local:///var/spark-data/spark-files/job.py",
    ] {
        ensure!(command.contains(wanted), "{wanted} not in {command}");
    }
    // The bundle names the resolved jars by Spark's names, with nothing uploaded for them.
    assert_eq!(
        server
            .metric("sparkstage_blob_bytes_received_total")
            .await?,
        "print('hello')\n".len() as u64
    );
    let list = reqwest::Client::new()
        .get(format!("{url}/v1/bundles"))
        .bearer_auth(UPLOAD_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    ensure!(list.contains("\"entries\":3"), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_repositories_are_limited_to_the_allowed_prefixes() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root.join("maven"))?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;
    let mirror = format!("{}maven/", repo.url);
    // The server's own repository has nothing: a resolution needs the request's repository.
    let own = format!("{}empty/", repo.url);
    let allowed = format!("{}maven", repo.url);
    let server = server_with(
        work.path(),
        &own,
        &["--maven-request-repositories", &allowed],
    )
    .await?;
    let http = reqwest::Client::new();
    let post = |repositories: Vec<String>| {
        let request = serde_json::json!({"coordinates": ["t:lib:1"], "repositories": repositories});
        let (http, server) = (&http, &server);
        async move { post_resolve(http, server, &request).await }
    };
    let answer = post(vec![mirror.clone()]).await?;
    ensure!(answer.status() == 200, "{}", answer.text().await?);
    let body: ResolveResponse = answer.json().await?;
    assert_eq!(body.artifacts.len(), 2);

    let port = repo
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .context("port")?;
    let before = repo.requests().len();
    for refused in [
        // A sibling path that only starts with the same characters.
        format!("{}maven-evil/", repo.url),
        // The same machine under another name, and another port.
        format!("http://localhost:{port}/maven/"),
        "http://127.0.0.1:1/maven/".to_owned(),
        format!("https://127.0.0.1:{port}/maven/"),
    ] {
        let answer = post(vec![refused.clone()]).await?;
        assert_eq!(answer.status(), 403, "{refused}");
        let message = answer.text().await?;
        ensure!(
            message.contains("repository_not_allowed") && message.contains("not under"),
            "{refused}: {message}"
        );
    }
    assert_eq!(
        repo.requests().len(),
        before,
        "a refused request reached a repository"
    );

    // `none`: only the server's own repositories; a request naming one is refused.
    let none = work.path().join("none");
    std::fs::create_dir_all(&none)?;
    let closed = server_with(&none, &own, &["--maven-request-repositories", "none"]).await?;
    let request = serde_json::json!({"coordinates": ["t:lib:1"], "repositories": [mirror]});
    let answer = post_resolve(&http, &closed, &request).await?;
    assert_eq!(answer.status(), 403);
    ensure!(
        answer
            .text()
            .await?
            .contains("only its own Maven repositories")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_authorizes_the_server_and_the_client() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let secret = "Bearer s3cret-repository-token";
    let repo = MavenRepo::serve_authorized(&root, secret).await?;
    let credentials = work.path().join("maven-credentials");
    std::fs::write(
        &credentials,
        format!(
            "# mirror\n{} {secret}\nhttp://elsewhere/ Basic eA==\n",
            repo.url
        ),
    )?;
    let credentials = credentials.to_str().context("utf-8")?;

    // Without the file the repository answers 401: a 502 that names it, not the secret.
    let bare = server(work.path(), &repo.url).await?;
    let http = reqwest::Client::new();
    let request = serde_json::json!({"coordinates": ["t:lib:1"]});
    let refused = post_resolve(&http, &bare, &request).await?;
    assert_eq!(refused.status(), 502);
    let message = refused.text().await?;
    ensure!(message.contains("401"), "{message}");

    let dir = work.path().join("with-file");
    std::fs::create_dir_all(&dir)?;
    let server = server_with(&dir, &repo.url, &["--maven-credentials-file", credentials]).await?;
    let answer = post_resolve(&http, &server, &request).await?;
    ensure!(answer.status() == 200, "{}", answer.text().await?);
    let body: ResolveResponse = answer.json().await?;
    assert_eq!(body.artifacts.len(), 2);

    // The client's in-process resolution takes the same file.
    let local = sparkstage(
        &[
            "resolve",
            "--maven-credentials-file",
            credentials,
            "t:lib:1",
        ],
        work.path(),
        &repo.url,
    )
    .await?;
    ensure!(local.status.success(), "{}", stderr(&local));
    assert_eq!(stdout(&local), "t:lib:1\nt:x:2.0\n");

    // A malformed file is refused, naming the line and not the value.
    let bad = work.path().join("bad-credentials");
    std::fs::write(&bad, "# mirror\nnexus.internal/maven/ Bearer s3cret\n")?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
        .args(["resolve", "--maven-credentials-file"])
        .arg(&bad)
        .args(["--maven-repository", &repo.url, "t:lib:1"])
        .output()
        .await?;
    assert!(!output.status.success());
    let said = stderr(&output);
    ensure!(
        said.contains("line 2: expected an http(s) repository URL") && !said.contains("s3cret"),
        "{said}"
    );
    let logged = format!("{}{}", bare.log(), server.log());
    ensure!(!logged.contains("s3cret"), "the secret reached a log line");
    Ok(())
}

/// A hostile repository (`sparkstage_tests::hostile_repo`): each attack ends in a clear error
/// within seconds, the process's peak memory stays small, and what the repository sent reaches
/// the terminal neither whole nor with its control characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_repositories_end_in_clear_errors_with_bounded_memory() -> Result<()> {
    let work = tempfile::tempdir()?;
    let hostile = HostileRepo::serve().await?;
    let cases: &[(&str, &[&str], &str)] = &[
        ("bomb", &[], "--maven-max-value-length"),
        ("endless", &[], "larger than 4194304 bytes"),
        ("laughs", &[], "declares entities"),
        ("huge", &[], "larger than 4194304 bytes"),
        ("sum", &[], "the limit for a checksum file"),
        ("ansi", &[], "not a checksum file"),
        ("deep-0", &[], "nest more than 32 deep"),
        (
            "hugejar",
            &["--maven-max-artifact-size", "8MiB"],
            "--maven-max-artifact-size",
        ),
        (
            "trickle",
            &["--resolve-timeout", "3s"],
            "did not finish within 3s",
        ),
        ("c1", &[], "\\u{9b}2J"),
    ];
    for (module, flags, expected) in cases {
        let coordinate = format!("t:{module}:1");
        let mut args = vec!["resolve", "-q", coordinate.as_str()];
        args.extend_from_slice(flags);
        let command = sparkstage_command(&args, work.path(), &hostile.url);
        let started = std::time::Instant::now();
        let (output, peak_kib) = run_measured(&command, work.path()).await?;
        let elapsed = started.elapsed();
        let err = stderr(&output);
        eprintln!("{module}: {elapsed:?}, peak RSS {} MiB", peak_kib >> 10);
        ensure!(!output.status.success(), "{module}: resolved: {err}");
        ensure!(
            err.contains(expected),
            "{module}: expected {expected:?} in: {err}"
        );
        ensure!(
            elapsed < Duration::from_secs(20),
            "{module}: took {elapsed:?}"
        );
        ensure!(
            peak_kib < 100 << 10,
            "{module}: peak RSS {} MiB",
            peak_kib >> 10
        );
        ensure!(
            err.len() < 2_000 && !err.contains('\u{1b}') && !err.contains('\u{9b}'),
            "{module}: {} bytes of stderr: {:?}",
            err.len(),
            err.chars().take(300).collect::<String>()
        );
    }
    Ok(())
}

/// Through the server: every hostile resolution at once answers 422 or 502 naming the limit,
/// `/healthz` keeps answering meanwhile, and the server's peak memory stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_hostile_repositories() -> Result<()> {
    let work = tempfile::tempdir()?;
    let hostile = HostileRepo::serve().await?;
    let server = server_with(work.path(), &hostile.url, &["--resolve-timeout", "4s"]).await?;
    let http = reqwest::Client::new();
    let cases = [
        ("bomb", 422, "resolution_limit"),
        ("endless", 502, "repository_failed"),
        ("laughs", 502, "repository_failed"),
        ("huge", 502, "repository_failed"),
        ("sum", 502, "repository_failed"),
        ("deep-0", 422, "resolution_limit"),
        ("trickle", 502, "repository_failed"),
    ];
    let requests = cases.iter().map(|(module, _, _)| {
        let request = serde_json::json!({ "coordinates": [format!("t:{module}:1")] });
        let (http, server) = (&http, &server);
        async move {
            let response = post_resolve(http, server, &request).await?;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await?;
            anyhow::Ok((status, body))
        }
    });
    let health = async {
        // While the resolutions run, the server answers at once.
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let status = http
                .get(format!("{}/healthz", server.url()))
                .send()
                .await?
                .status();
            ensure!(status.is_success(), "/healthz: {status}");
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(slowest)
    };
    let (answers, slowest) = tokio::join!(futures::future::join_all(requests), health);
    ensure!(slowest? < Duration::from_secs(1), "/healthz stalled");
    for ((module, status, code), answer) in cases.iter().zip(answers) {
        let (got, body) = answer?;
        ensure!(
            got == *status && body["code"] == *code,
            "{module}: {got} {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        ensure!(
            message.len() < 2_000,
            "{module}: a {} byte message",
            message.len()
        );
    }
    let peak_mib = peak_kib(server.process.id())? >> 10;
    ensure!(peak_mib < 150, "the server's peak RSS is {peak_mib} MiB");
    Ok(())
}

/// A repository that cannot be connected to is asked once per resolution: the rest of the
/// resolution goes to the next repository, with one warning naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_is_skipped_after_its_first_failure() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}/closed/", listener.local_addr()?)
    };
    let repositories = format!("{closed},{}", repo.url);
    let output = sparkstage(&["resolve", "t:lib:1"], work.path(), &repositories).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    ensure!(
        stdout(&output) == "t:lib:1\nt:x:2.0\n",
        "{}",
        stdout(&output)
    );
    ensure!(
        err.matches("skipped for the rest of this resolution")
            .count()
            == 1
            && err.contains("/closed/")
            && err.contains("cannot connect"),
        "{err}"
    );
    // What only the unreachable repository could have had fails with its reason.
    let output = sparkstage(&["resolve", "t:absent:1"], work.path(), &repositories).await?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "{err}");
    ensure!(
        err.contains("/closed/") && err.contains("cannot connect"),
        "{err}"
    );
    Ok(())
}

/// `spark-defaults.conf` (from `SPARK_CONF_DIR`) is read as spark-submit reads it: without a
/// `--properties-file`, or with one and `--load-spark-defaults`; its local patterns are expanded
/// and staged, its packages resolved on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_defaults_conf_is_read_as_spark_submit_reads_it() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (repo, server, app) = submit_fixture(work.path()).await?;
    std::fs::create_dir_all(app.join("libs"))?;
    std::fs::write(app.join("libs/a.jar"), "a")?;
    std::fs::write(app.join("libs/b.jar"), "b")?;
    std::fs::write(app.join("other.properties"), "spark.executor.cores=2\n")?;
    let conf = work.path().join("conf");
    std::fs::create_dir_all(&conf)?;
    std::fs::write(
        conf.join("spark-defaults.conf"),
        "spark.jars  libs/*.jar\nspark.jars.packages=t:x:1.0\n",
    )?;
    let url = server.url();
    let submit = |extra: &'static [&'static str]| {
        let mut args = vec![
            "--server",
            url.as_str(),
            "submit",
            "--dry-run",
            "--",
            "spark-submit",
            "--master",
            "k8s://https://kubernetes.default.svc",
            "--deploy-mode",
            "cluster",
        ];
        args.extend_from_slice(extra);
        args.push("job.py");
        let mut command = sparkstage_command(&args, &app, &repo.url);
        command
            .env("SPARK_CONF_DIR", &conf)
            .env_remove("SPARK_HOME");
        command
    };
    let command_line = |output: &Output| -> Result<String> {
        ensure!(output.status.success(), "{}", stderr(output));
        Ok(stdout(output)
            .lines()
            .find(|l| l.starts_with("spark-submit"))
            .context("no command in the dry run")?
            .to_owned())
    };
    let jars = "spark.jars=local:///var/spark-data/spark-jars/a.jar,\
                local:///var/spark-data/spark-jars/b.jar,local:///var/spark-data/spark-jars/t_x-1.0.jar";
    for extra in [
        &[][..],
        &[
            "--properties-file",
            "other.properties",
            "--load-spark-defaults",
        ][..],
    ] {
        let command = command_line(&submit(extra).output().await?)?;
        ensure!(command.contains(jars), "{extra:?}: {command}");
        ensure!(
            command.contains("spark.jars.packages="),
            "{extra:?}: {command}"
        );
    }
    // A properties file without --load-spark-defaults: spark-submit reads no defaults.
    let command = command_line(
        &submit(&["--properties-file", "other.properties"])
            .output()
            .await?,
    )?;
    ensure!(!command.contains("spark.jars="), "{command}");
    Ok(())
}

/// A resolution's jars are kept from garbage collection while a client may still name them in a
/// bundle (the server keeps the answer's record), even with no grace at all; an uploaded blob
/// nothing names is collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_jars_are_kept_from_garbage_collection_until_bundled() -> Result<()> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;
    let server = server_with(work.path(), &repo.url, &["--gc-grace", "0s"]).await?;
    let http = reqwest::Client::new();
    let answer = post_resolve(
        &http,
        &server,
        &serde_json::json!({"coordinates": ["t:lib:1"]}),
    )
    .await?;
    ensure!(answer.status().is_success(), "HTTP {}", answer.status());
    let resolved: ResolveResponse = answer.json().await?;
    ensure!(resolved.artifacts.len() == 2, "{resolved:?}");
    let stray = b"uploaded, never bundled".to_vec();
    let stray_digest = sparkstage_api::Digest::of(&stray);
    let put = http
        .put(format!("{}/v1/blobs/{stray_digest}", server.url()))
        .bearer_auth(UPLOAD_TOKEN)
        .body(stray)
        .send()
        .await?;
    ensure!(put.status() == 201, "{}", put.status());

    let gc: serde_json::Value = http
        .post(format!("{}/v1/gc", server.url()))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    ensure!(
        gc["blobs_deleted"] == 1 && gc["blobs"][0]["digest"] == stray_digest.to_string(),
        "{gc}"
    );
    // The resolved jars are still there: a bundle of them is created.
    let entries: Vec<serde_json::Value> = resolved
        .artifacts
        .iter()
        .map(|a| serde_json::json!({"name": a.file_name, "digest": a.digest, "size": a.size, "kind": "jar"}))
        .collect();
    let created = http
        .post(format!("{}/v1/bundles", server.url()))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"entries": entries}))
        .send()
        .await?;
    ensure!(created.status() == 201, "{}", created.text().await?);
    Ok(())
}

/// The resolver's cache is on the store (issue 13): two replicas on one bucket (moto), each
/// with its own empty `--maven-cache`, resolve the same coordinates and the repository is
/// asked once; a replica restarted on an empty local cache asks it nothing; and a bundle
/// source naming a resolved jar's URL is that same record (one cache for sources and Maven).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_maven_cache_on_the_store() -> Result<()> {
    use sparkstage_tests::peers::{Moto, ObjectStorePeer};
    let work = tempfile::tempdir()?;
    let root = work.path().join("repo");
    repository(&root)?;
    let repo = MavenRepo::serve(&root, Duration::ZERO).await?;
    let moto = Moto::start().await?;
    moto.create_bucket("maven-shared").await?;
    let env = moto.env();
    let replica = |local: &'static str| {
        let (work, url, env) = (work.path(), repo.url.clone(), env.clone());
        async move {
            let storage = ("s3://maven-shared/sparkstage", local);
            server_on(work, &url, storage, &[], &env).await
        }
    };
    let http = reqwest::Client::new();
    let request = serde_json::json!({"coordinates": ["t:lib:1", "t:x:1.0"]});
    let resolve = |server: &Server| {
        let (http, request, url) = (http.clone(), request.clone(), server.url());
        async move {
            let answer = http
                .post(format!("{url}/v1/resolve"))
                .bearer_auth(UPLOAD_TOKEN)
                .json(&request)
                .send()
                .await?;
            ensure!(answer.status().is_success(), "HTTP {}", answer.status());
            anyhow::Ok(answer.json::<ResolveResponse>().await?)
        }
    };

    let a = replica("cache-a").await?;
    let first = resolve(&a).await?;
    ensure!(repo.gets("lib-1.pom") == 1 && repo.gets("x-2.0.jar") == 1);
    let asked = repo.requests().len();
    let b = replica("cache-b").await?;
    let second = resolve(&b).await?;
    ensure!(second == first, "{second:?} != {first:?}");
    ensure!(
        repo.requests().len() == asked,
        "the second replica asked the repository: {:?}",
        &repo.requests()[asked..]
    );
    // The second replica's local cache holds no jar: the store keeps them.
    let jars: Vec<_> = walk(&work.path().join("cache-b"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jar"))
        .collect();
    ensure!(jars.is_empty(), "{jars:?}");

    drop(a);
    let restarted = replica("cache-a-restarted").await?;
    ensure!(resolve(&restarted).await? == first);
    ensure!(
        repo.requests().len() == asked,
        "a restarted replica starts warm"
    );

    // The jar's URL as a bundle source: the record the resolution wrote.
    let x = first
        .artifacts
        .iter()
        .find(|a| a.coordinate == "t:x:2.0")
        .context("x")?;
    let source = http
        .post(format!("{}/v1/sources", b.url()))
        .bearer_auth(UPLOAD_TOKEN)
        .json(&serde_json::json!({"url": format!("{}t/x/2.0/x-2.0.jar", repo.url)}))
        .send()
        .await?;
    ensure!(source.status().is_success(), "HTTP {}", source.status());
    let source: serde_json::Value = source.json().await?;
    ensure!(source["digest"] == x.digest.to_string(), "{source}");
    ensure!(repo.gets("x-2.0.jar") == 1, "{:?}", repo.requests());
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                todo.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}
