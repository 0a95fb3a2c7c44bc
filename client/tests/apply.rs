//! `sparkstage apply --dry-run` against the real server (a process): the rewritten
//! SparkApplications validate against the spark-operator's CustomResourceDefinition (a copy in
//! tests/fixtures/k8s/spark-operator/), for both ways of adding the init container.

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use serde_json::Value;
use sparkstage_tests::server::Server;

fn schema() -> Result<Value> {
    let crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/k8s/spark-operator/sparkoperator.k8s.io_sparkapplications.yaml");
    sparkstage_tests::deploy::crd_schema(&std::fs::read_to_string(crd)?, "v1beta2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_documents_fit_the_operators_schema() -> Result<()> {
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.jar"), "jar")?;
    std::fs::write(work.path().join("lookup.csv"), "a,b\n")?;
    std::fs::write(
        work.path().join("app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\ndata: {a: b}\n---\n\
         apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n\
         metadata: {name: nightly, namespace: analytics}\nspec:\n  type: Scala\n  mode: cluster\n  \
         image: apache/spark:4.0.0\n  sparkVersion: 4.0.0\n  mainClass: com.example.Nightly\n  \
         mainApplicationFile: app.jar\n  deps:\n    files: [lookup.csv]\n  driver: {cores: 1}\n  \
         executor: {instances: 2}\n",
    )?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let schema = schema()?;
    for inject in ["webhook", "spec"] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
            .args(["apply", "-f", "app.yaml", "--dry-run", "--inject", inject])
            .args(["--server", &server.url()])
            .current_dir(work.path())
            .env("SPARKSTAGE_DIGEST_CACHE", work.path().join("digests.json"))
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(output.status.success(), "{stderr}");
        let text = String::from_utf8(output.stdout)?;
        let mut documents = Vec::new();
        for document in serde_norway::Deserializer::from_str(&text) {
            documents.push(Value::deserialize(document)?);
        }
        let kinds: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        ensure!(
            kinds == ["Secret", "ConfigMap", "SparkApplication"],
            "{kinds:?}"
        );
        ensure!(documents[1]["data"]["a"] == "b", "other kinds pass through");
        let app = &documents[2];
        sparkstage_tests::deploy::check_custom_resource(&schema, app, inject)
            .with_context(|| format!("--inject {inject}: {app}"))?;
        ensure!(app["spec"]["mainApplicationFile"] == "local:///var/spark-data/spark-jars/app.jar");
        match inject {
            "webhook" => {
                ensure!(app["spec"]["executor"]["labels"]["sparkstage.io/inject"] == "true")
            }
            _ => ensure!(app["spec"]["driver"]["initContainers"][0]["name"] == "sparkstage-init"),
        }
    }
    Ok(())
}
