//! `sparkstage upload`, `ls`, `rm`, and the fork's configuration keys, against the real server
//! (a process) with an upload token.

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result, ensure};
use sparkstage_tests::server::Server;

const UPLOAD_TOKEN: &str = "operator-upload-token-0123456789";

async fn sparkstage(args: &[&str], cwd: &Path) -> Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"));
    command.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPARKSTAGE_") {
            command.env_remove(&name);
        }
    }
    command
        .env("SPARKSTAGE_UPLOAD_TOKEN", UPLOAD_TOKEN)
        .env("SPARKSTAGE_DIGEST_CACHE", cwd.join("digests.json"));
    Ok(command.output().await?)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The real server, requiring [`UPLOAD_TOKEN`] (read from a file in `work`).
async fn server_with_upload_token(work: &Path) -> Result<Server> {
    let token_file = work.join("upload.token");
    std::fs::write(&token_file, UPLOAD_TOKEN)?;
    Server::start(
        &[
            "--storage",
            "memory://",
            "--upload-token-file",
            token_file.to_str().context("utf-8")?,
        ],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_ls_rm() -> Result<()> {
    let work = tempfile::tempdir()?;
    let server = server_with_upload_token(work.path()).await?;
    let url = server.url();
    std::fs::write(work.path().join("a.jar"), vec![7u8; 300_000])?;
    std::fs::write(work.path().join("b.csv"), "x,y\n")?;

    let o = sparkstage(
        &[
            "upload",
            "--server",
            &url,
            "--token-out",
            "bundle.token",
            "a.jar",
            "b.csv",
        ],
        work.path(),
    )
    .await?;
    ensure!(o.status.success(), "{}", err(&o));
    let id = out(&o).trim().to_owned();
    ensure!(id.len() == 32, "not a bundle id: {id:?}");
    let token = std::fs::read_to_string(work.path().join("bundle.token"))?;
    ensure!(
        !err(&o).contains(&token) && !out(&o).contains(&token),
        "token printed"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(work.path().join("bundle.token"))?
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The token opens the bundle, whose entries have the right kinds.
    let manifest = server.manifest(&id, &token).await?;
    let kinds: Vec<(&str, &str)> = manifest["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds, [("a.jar", "jar"), ("b.csv", "file")]);

    let o = sparkstage(&["ls", "--server", &url], work.path()).await?;
    ensure!(o.status.success(), "{}", err(&o));
    let line = out(&o)
        .lines()
        .find(|l| l.starts_with(&id))
        .map(str::to_owned)
        .with_context(|| format!("{id} not listed: {}", out(&o)))?;
    ensure!(line.contains(" 2 ") && line.contains("293.0 KiB"), "{line}");

    let o = sparkstage(&["rm", "--server", &url, &id], work.path()).await?;
    ensure!(o.status.success(), "{}", err(&o));
    let o = sparkstage(&["ls", "--server", &url], work.path()).await?;
    ensure!(!out(&o).contains(&id), "still listed: {}", out(&o));
    let o = sparkstage(&["rm", "--server", &url, &id], work.path()).await?;
    ensure!(
        !o.status.success() && err(&o).contains("bundle_not_found"),
        "{}",
        err(&o)
    );

    // Without the upload token the server refuses, and says why.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
        .args(["ls", "--server", &url])
        .env_remove("SPARKSTAGE_UPLOAD_TOKEN")
        .env_remove("SPARKSTAGE_UPLOAD_TOKEN_FILE")
        .output()
        .await?;
    ensure!(
        !o.status.success() && err(&o).contains("401"),
        "{}",
        err(&o)
    );
    Ok(())
}

/// The resource-staging-server fork's keys, given as `--conf`, stand for our options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forks_configuration_keys_are_aliases() -> Result<()> {
    let work = tempfile::tempdir()?;
    let server = server_with_upload_token(work.path()).await?;
    std::fs::write(work.path().join("app.jar"), "jar")?;
    let uri = format!(
        "spark.kubernetes.resourceStagingServer.uri={}",
        server.url()
    );
    let o = sparkstage(
        &[
            "submit",
            "--dry-run",
            "--templates-dir",
            "t",
            "--",
            "spark-submit",
            "--conf",
            &uri,
            "--conf",
            "spark.kubernetes.resourceStagingServer.internal.uri=http://sparkstage.svc:10000",
            "--conf",
            "spark.kubernetes.mountdependencies.jarsDownloadDir=/opt/deps/jars",
            "--conf",
            "spark.kubernetes.mountdependencies.mountTimeout=90s",
            "app.jar",
        ],
        work.path(),
    )
    .await?;
    ensure!(o.status.success(), "{}", err(&o));
    let report = out(&o);
    ensure!(
        report.contains("local:///opt/deps/jars/app.jar"),
        "{report}"
    );
    let template = std::fs::read_to_string(work.path().join("t/driver-pod-template.yaml"))?;
    for expected in ["http://sparkstage.svc:10000", "/opt/deps/jars", "90s"] {
        ensure!(template.contains(expected), "{expected} not in {template}");
    }
    Ok(())
}

/// `--inject webhook`: labels and annotations for the server's webhook instead of templates; a
/// Secret only when the server cannot check the pods' own tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_for_the_webhook_labels_the_pods_and_needs_a_secret_only_without_pod_identity()
-> Result<()> {
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.jar"), "jar")?;
    let token_file = work.path().join("upload.token");
    std::fs::write(&token_file, UPLOAD_TOKEN)?;
    let double =
        sparkstage_tests::kube_double::KubeDouble::start("15-pods-list-before-watch").await?;
    let kubeconfig = double.kubeconfig(work.path())?;
    let token_arg = token_file.to_str().context("utf-8")?;
    for pod_identity in [false, true] {
        let mut args = vec!["--storage", "memory://", "--upload-token-file", token_arg];
        if pod_identity {
            args.push("--kubernetes");
        }
        let server = Server::start(
            &args,
            &[("KUBECONFIG".to_owned(), kubeconfig.display().to_string())],
        )
        .await?;
        let o = sparkstage(
            &[
                "submit",
                "--server",
                &server.url(),
                "--inject",
                "webhook",
                "--jars-dir",
                "/opt/deps/jars",
                "--dry-run",
                "--",
                "spark-submit",
                "--conf",
                "spark.kubernetes.executor.podTemplateContainerName=spark",
                "app.jar",
            ],
            work.path(),
        )
        .await?;
        ensure!(o.status.success(), "{}", err(&o));
        let report = out(&o);
        let bundle = err(&o)
            .split_whitespace()
            .skip_while(|w| *w != "bundle")
            .nth(1)
            .context("no bundle id")?
            .trim_end_matches(':')
            .to_owned();
        for role in ["driver", "executor"] {
            for expected in [
                format!("spark.kubernetes.{role}.label.sparkstage.io/inject=true"),
                format!("spark.kubernetes.{role}.annotation.sparkstage.io/bundle={bundle}"),
                format!("spark.kubernetes.{role}.annotation.sparkstage.io/jars-dir=/opt/deps/jars"),
            ] {
                ensure!(report.contains(&expected), "{expected} not in {report}");
            }
        }
        ensure!(
            report.contains("spark.kubernetes.executor.annotation.sparkstage.io/container=spark"),
            "{report}"
        );
        ensure!(!report.contains("podTemplateFile"), "{report}");
        ensure!(
            !report.contains("files-dir"),
            "the default directory is not written: {report}"
        );
        ensure!(
            report.contains("local:///opt/deps/jars/app.jar"),
            "{report}"
        );
        ensure!(
            report.contains("# Secret") != pod_identity,
            "pod identity {pod_identity}: {report}"
        );
    }
    Ok(())
}

/// The digests `sparkstage gc` printed, in order.
fn printed_blobs(o: &Output, verb: &str) -> Vec<String> {
    let prefix = format!("{verb} blob ");
    let mut out: Vec<String> = out(o)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

async fn blob_stored(url: &str, digest: &str) -> Result<bool> {
    let status = reqwest::Client::new()
        .head(format!("{url}/v1/blobs/{digest}"))
        .bearer_auth(UPLOAD_TOKEN)
        .send()
        .await?
        .status();
    Ok(status.is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_dry_run_deletes_nothing_and_gc_deletes_what_it_printed() -> Result<()> {
    let work = tempfile::tempdir()?;
    let token_file = work.path().join("upload.token");
    std::fs::write(&token_file, UPLOAD_TOKEN)?;
    // No grace: blobs of a deleted bundle are garbage at once.
    let server = Server::start(
        &[
            "--storage",
            "memory://",
            "--upload-token-file",
            token_file.to_str().context("utf-8")?,
            "--gc-grace",
            "0s",
            "--max-storage",
            "10MiB",
        ],
        &[],
    )
    .await?;
    let url = server.url();
    for (name, byte, len) in [
        ("a.jar", 1u8, 200_000),
        ("b.csv", 2, 3000),
        ("c.jar", 3, 5000),
    ] {
        std::fs::write(work.path().join(name), vec![byte; len])?;
    }
    let upload = |files: &'static [&'static str]| {
        let mut args = vec!["upload", "--server", &url];
        args.extend_from_slice(files);
        let dir = work.path().to_owned();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = sparkstage(&args, &dir).await?;
            ensure!(o.status.success(), "{}", err(&o));
            Ok::<_, anyhow::Error>(out(&o).trim().to_owned())
        }
    };
    let gone = upload(&["a.jar", "b.csv"]).await?;
    let kept = upload(&["c.jar"]).await?;
    let o = sparkstage(&["rm", "--server", &url, &gone], work.path()).await?;
    ensure!(o.status.success(), "{}", err(&o));

    let o = sparkstage(&["ls", "--server", &url], work.path()).await?;
    let line = out(&o)
        .lines()
        .find(|l| l.starts_with(&kept))
        .map(str::to_owned)
        .with_context(|| out(&o))?;
    ensure!(
        line.contains("unused") && line.contains("(expired)"),
        "{line}"
    );

    let o = sparkstage(&["gc", "--dry-run", "--server", &url], work.path()).await?;
    ensure!(o.status.success(), "{}", err(&o));
    let would = printed_blobs(&o, "would delete");
    ensure!(would.len() == 2, "{}", out(&o));
    ensure!(
        out(&o).contains("would delete 0 bundles and 2 blobs (198.2 KiB); kept 1 blobs")
            && out(&o).contains("of 10.0 MiB"),
        "{}",
        out(&o)
    );
    for digest in &would {
        ensure!(
            blob_stored(&url, digest).await?,
            "the dry run deleted {digest}"
        );
    }

    let o = sparkstage(&["gc", "--server", &url], work.path()).await?;
    ensure!(o.status.success(), "{}", err(&o));
    ensure!(printed_blobs(&o, "deleted") == would, "{}", out(&o));
    for digest in &would {
        ensure!(
            !blob_stored(&url, digest).await?,
            "{digest} is still stored"
        );
    }
    // The kept bundle's blob is there, and the bundle downloads.
    let o = sparkstage(&["ls", "--server", &url], work.path()).await?;
    ensure!(out(&o).contains(&kept), "{}", out(&o));
    ensure!(server.metric("sparkstage_gc_blobs_deleted_total").await? == 2);
    ensure!(
        server
            .metric("sparkstage_bundles_deleted_total{reason=\"deleted\"}")
            .await?
            == 1
    );
    Ok(())
}
