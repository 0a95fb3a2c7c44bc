//! `sparkstage submit` end to end, as a pod would run it: a dry run against the real server
//! (a process), then the init container run exactly as the generated template describes it, with
//! the Secret's token where the mounted file would be and temporary directories standing for the
//! volumes, then the rewritten spark-submit (from the `pyspark` wheel) with `--master local[2]`
//! and the mount root mapped to those directories. No Kubernetes API server can run here; the
//! Secret is checked as a manifest (its creation through the API is tested in `secret.rs`).

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use sparkstage_tests::server::{Server, binary};
use sparkstage_tests::spark::{
    MAIN_CLASS, build_job_jar, data_file, run_spark, spark_command, spark_jars, spark_submit,
};

const MOUNT_ROOT: &str = "/var/spark-data";

async fn sparkstage(args: &[String], cwd: &Path, cache: &Path) -> Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"));
    command.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPARKSTAGE_") {
            command.env_remove(&name);
        }
    }
    command.env("SPARKSTAGE_DIGEST_CACHE", cache);
    Ok(command.output().await?)
}

/// Splits the command line the dry run printed (words quoted as `shell_quote` does).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            '\\' if !quoted => {}
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The documents of the dry run's report: (heading, body).
fn documents(report: &str) -> Vec<(String, String)> {
    report
        .split("---\n")
        .filter_map(|doc| {
            let (heading, body) = doc.split_once('\n')?;
            Some((heading.trim_start_matches("# ").to_owned(), body.to_owned()))
        })
        .collect()
}

fn map_root(s: &str, root: &Path) -> String {
    s.replace(MOUNT_ROOT, &root.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_init_container_then_spark_submit_runs_the_job() -> Result<()> {
    let spark = spark_submit()?;
    let work = tempfile::Builder::new()
        .prefix("sparkstage-submit-")
        .tempdir()?;
    let app = work.path().join("app");
    std::fs::create_dir_all(&app)?;
    let jar = build_job_jar(&work.path().join("build"), &spark_jars(&spark)?)?;
    std::fs::write(app.join("wordcount.jar"), &jar)?;
    let (data, lines, words) = data_file();
    std::fs::write(app.join("words.txt"), &data)?;
    // A user template: what it has must survive the merge.
    std::fs::write(
        app.join("driver.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    team: data\nspec:\n  \
         nodeSelector:\n    pool: spark\n  containers:\n  - name: main\n    env:\n    \
         - name: KEEP\n      value: me\n",
    )?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let templates = work.path().join("templates");
    let cache = work.path().join("digests.json");
    let args: Vec<String> = [
        "submit",
        "--server",
        &server.url(),
        "--namespace",
        "analytics",
        "--templates-dir",
        &templates.display().to_string(),
        "--dry-run",
        "--",
        &spark.display().to_string(),
        "--master",
        "k8s://https://kubernetes.default.svc",
        "--deploy-mode",
        "cluster",
        "--name",
        "word count",
        "--class",
        MAIN_CLASS,
        "--conf",
        "spark.kubernetes.driver.podTemplateFile=driver.yaml",
        "--files",
        "words.txt",
        "wordcount.jar",
        &format!("{MOUNT_ROOT}/spark-files/words.txt"),
    ]
    .map(String::from)
    .to_vec();
    let output = sparkstage(&args, &app, &cache).await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(output.status.success(), "{stderr}");
    ensure!(stderr.contains("2 files, 2 uploaded"), "{stderr}");
    let docs = documents(&stdout);
    let command = shell_words(
        docs.iter()
            .find(|(h, _)| h == "spark-submit command")
            .context("no command in the report")?
            .1
            .trim(),
    );
    // Rewritten: local:// paths in the pod, the templates set, everything else as given.
    let jar_uri = format!("local://{MOUNT_ROOT}/spark-jars/wordcount.jar");
    let data_uri = format!("local://{MOUNT_ROOT}/spark-files/words.txt");
    ensure!(
        command.contains(&jar_uri) && command.contains(&data_uri),
        "{command:?}"
    );
    ensure!(command.contains(&"word count".to_owned()), "{command:?}");
    let driver_template = templates.join("driver-pod-template.yaml");
    ensure!(
        command.contains(&format!(
            "spark.kubernetes.driver.podTemplateFile={}",
            driver_template.display()
        )),
        "{command:?}"
    );

    // The templates are Pods; the user's settings are kept.
    let driver: Pod = serde_norway::from_str(&std::fs::read_to_string(&driver_template)?)?;
    let executor: Pod = serde_norway::from_str(&std::fs::read_to_string(
        templates.join("executor-pod-template.yaml"),
    )?)?;
    let spec = driver.spec.as_ref().context("driver spec")?;
    assert_eq!(
        driver
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("data")
    );
    assert_eq!(
        spec.node_selector
            .as_ref()
            .and_then(|n| n.get("pool"))
            .map(String::as_str),
        Some("spark")
    );
    assert_eq!(spec.containers[0].name, "main");
    assert!(
        spec.containers[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "KEEP")
    );
    let secret_doc = docs
        .iter()
        .find(|(h, _)| h.starts_with("Secret"))
        .context("no Secret in the report")?;
    let secret: Secret = serde_norway::from_str(&secret_doc.1)?;
    assert_eq!(secret.metadata.namespace.as_deref(), Some("analytics"));
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .context("no token in the Secret")?;
    let token = String::from_utf8(token.0.clone())?;

    // Owner tracking: driver and executor pods carry the bundle's label, and the bundle's owner
    // records it with the namespace.
    let label = |role: &str| {
        let key = format!("spark.kubernetes.{role}.label.sparkstage.io/bundle=");
        command
            .iter()
            .find_map(|a| a.strip_prefix(&key).map(str::to_owned))
    };
    let id = label("driver").context("no bundle label on the driver")?;
    ensure!(label("executor") == Some(id.clone()), "{command:?}");
    let manifest = server.manifest(&id, &token).await?;
    ensure!(
        manifest["owner"]["namespace"] == "analytics"
            && manifest["owner"]["labels"]["sparkstage.io/bundle"] == id.as_str(),
        "{manifest}"
    );

    // Each pod: the init container as its template says, then Spark.
    for (role, pod) in [("executor", &executor), ("driver", &driver)] {
        let pod_root = work.path().join(format!("{role}-pod"));
        let secret_dir = pod_root.join("secret");
        std::fs::create_dir_all(&secret_dir)?;
        std::fs::write(secret_dir.join("token"), &token)?;
        let spec = pod.spec.as_ref().context("spec")?;
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == "sparkstage-init")
            .context("no init container")?;
        let init_args: Vec<String> = init
            .args
            .iter()
            .flatten()
            .map(|a| {
                map_root(a, &pod_root.join("volumes")).replace(
                    "/var/run/secrets/sparkstage",
                    &secret_dir.display().to_string(),
                )
            })
            .collect();
        let output = tokio::process::Command::new(binary("sparkstage-init")?)
            .args(&init_args)
            .output()
            .await?;
        ensure!(
            output.status.success(),
            "init container of the {role}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let volumes = pod_root.join("volumes");
        assert_eq!(
            std::fs::read(volumes.join("spark-jars/wordcount.jar"))?,
            jar
        );
        assert_eq!(std::fs::read(volumes.join("spark-files/words.txt"))?, data);
    }

    // The rewritten submission, in local mode, with the mount root mapped to the driver pod's.
    let root = work.path().join("driver-pod/volumes");
    let mut spark_args: Vec<String> = Vec::new();
    let mut rest = command.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--master" => {
                rest.next();
                spark_args.extend(["--master".into(), "local[2]".into()]);
            }
            "--deploy-mode" => {
                rest.next();
            }
            a => spark_args.push(map_root(a, &root)),
        }
    }
    let mut run = spark_command(&spark, work.path())?;
    run.args(&spark_args);
    let out = run_spark(run).await?;
    let expected = format!("SPARKSTAGE_WORDCOUNT lines={lines} words={words}");
    ensure!(
        out.lines().any(|l| l.trim() == expected),
        "expected {expected}:\n{out}"
    );

    // An unchanged re-submit uploads nothing and hashes nothing.
    let before = server
        .metric("sparkstage_blob_bytes_received_total")
        .await?;
    let output = sparkstage(&args, &app, &cache).await?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(output.status.success(), "{stderr}");
    ensure!(stderr.contains("2 files, 0 uploaded (0 B)"), "{stderr}");
    assert_eq!(
        server
            .metric("sparkstage_blob_bytes_received_total")
            .await?,
        before
    );
    Ok(())
}
