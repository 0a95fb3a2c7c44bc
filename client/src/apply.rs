//! `sparkstage apply -f FILE|-` (issue 14, work in progress): a spark-operator SparkApplication's
//! local dependencies found and rewritten as `sparkstage submit` rewrites a submission (the same
//! [`Planner`]), and the init container asked for through the driver's and executors' labels and
//! annotations.
//!
//! Done so far: reading the documents, finding and rewriting the dependencies
//! (`spec.mainApplicationFile`, `spec.deps.{jars,files,pyFiles,archives}`, the dependency keys
//! of `spec.sparkConf`), and the webhook's labels and annotations. Still to do (see the issue):
//! `spec.deps.packages` resolved on the server, staging (the submit hook's `stage`), `--inject
//! spec`, server-side apply, the bundle's owner, the CLI command, and the tests against the
//! CRD's schema and end to end.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use sparkstage_api::bundles::EntryKind;

use crate::deps::{LISTS, Planner};

pub const API_VERSION: &str = "sparkoperator.k8s.io/v1beta2";
pub const KIND: &str = "SparkApplication";

/// The documents of a YAML stream, in order.
pub fn read_documents(text: &str) -> Result<Vec<Value>> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document).context("not a YAML document")?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Whether `document` is a SparkApplication this command rewrites.
pub fn is_application(document: &Value) -> bool {
    document["apiVersion"] == API_VERSION && document["kind"] == KIND
}

/// Rewrites the application's dependency entries through `planner` (local files become
/// `local://` paths in the pod; with the planner's `fetch_remote`, remote ones too).
pub fn plan_application(document: &mut Value, planner: &mut Planner<'_>) -> Result<()> {
    let spec = &mut document["spec"];
    if let Some(primary) = spec["mainApplicationFile"].as_str().map(str::to_owned)
        && let Some(uri) = planner.primary(&primary)?
    {
        spec["mainApplicationFile"] = Value::String(uri);
    }
    for (field, kind) in [
        ("jars", EntryKind::Jar),
        ("files", EntryKind::File),
        ("pyFiles", EntryKind::Pyfile),
        ("archives", EntryKind::Archive),
    ] {
        if let Some(entries) = spec["deps"][field].as_array_mut() {
            for entry in entries.iter_mut() {
                let Some(text) = entry.as_str().map(str::to_owned) else {
                    continue;
                };
                if let Some(uri) = planner.entries(&text, kind, &format!("spec.deps.{field}"))? {
                    *entry = Value::String(uri);
                }
            }
        }
    }
    if let Some(conf) = spec["sparkConf"].as_object_mut() {
        for (_, key, kind) in LISTS {
            if let Some(value) = conf.get(key).and_then(Value::as_str).map(str::to_owned)
                && let Some(new) =
                    planner.entries(&value, kind, &format!("spec.sparkConf {key}"))?
            {
                conf.insert(key.to_owned(), Value::String(new));
            }
        }
    }
    Ok(())
}

/// Asks the server's webhook for the init container in the driver's and the executors' pods
/// (`spec.driver` / `spec.executor` labels and annotations, which the operator puts on the
/// pods), as `sparkstage submit --inject webhook` does through Spark's configuration.
pub fn ask_webhook(document: &mut Value, annotations: &[(&str, String)]) {
    use sparkstage_injection::webhook::INJECT_LABEL;
    for role in ["driver", "executor"] {
        let pod = &mut document["spec"][role];
        if !pod["labels"].is_object() {
            pod["labels"] = serde_json::json!({});
        }
        pod["labels"][INJECT_LABEL] = Value::String("true".to_owned());
        if !pod["annotations"].is_object() {
            pod["annotations"] = serde_json::json!({});
        }
        for (key, value) in annotations {
            pod["annotations"][*key] = Value::String(value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deps::Layout;

    #[test]
    fn local_dependencies_are_rewritten_and_the_rest_kept() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("app.jar"), "jar")?;
        std::fs::write(dir.path().join("dep.jar"), "dep")?;
        std::fs::write(dir.path().join("lookup.csv"), "a,b")?;
        let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata: {name: nightly, namespace: analytics}
spec:
  type: Scala
  mode: cluster
  mainApplicationFile: app.jar
  deps:
    jars: [dep.jar, "local:///opt/x.jar"]
    files: ["file:lookup.csv"]
  sparkConf:
    spark.files: "s3a://b/y.txt"
"#;
        let mut documents = read_documents(text)?;
        assert_eq!(documents.len(), 2);
        assert!(!is_application(&documents[0]));
        assert!(is_application(&documents[1]));
        let layout = Layout::default();
        let mut planner = Planner::new(dir.path(), &layout, false);
        plan_application(&mut documents[1], &mut planner)?;
        let (deps, remote) = planner.finish()?;
        let spec = &documents[1]["spec"];
        assert_eq!(
            spec["mainApplicationFile"],
            "local:///var/spark-data/spark-jars/app.jar"
        );
        assert_eq!(
            spec["deps"]["jars"],
            serde_json::json!([
                "local:///var/spark-data/spark-jars/dep.jar",
                "local:///opt/x.jar"
            ])
        );
        assert_eq!(
            spec["deps"]["files"],
            serde_json::json!(["local:///var/spark-data/spark-files/lookup.csv"])
        );
        assert_eq!(spec["sparkConf"]["spark.files"], "s3a://b/y.txt");
        let names: Vec<&str> = deps.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["app.jar", "dep.jar", "lookup.csv"]);
        assert!(remote.is_empty());

        ask_webhook(
            &mut documents[1],
            &[("sparkstage.io/bundle", "b".repeat(32))],
        );
        assert_eq!(
            documents[1]["spec"]["executor"]["labels"]["sparkstage.io/inject"],
            "true"
        );
        assert_eq!(
            documents[1]["spec"]["driver"]["annotations"]["sparkstage.io/bundle"],
            "b".repeat(32)
        );
        Ok(())
    }
}
