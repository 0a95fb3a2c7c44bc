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
    // Read with `get_mut`: indexing a missing field would write a `null` into the document.
    let Some(spec) = document.get_mut("spec") else {
        return Ok(());
    };
    if let Some(primary) = spec
        .get("mainApplicationFile")
        .and_then(Value::as_str)
        .map(str::to_owned)
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
        let entries = spec
            .get_mut("deps")
            .and_then(|d| d.get_mut(field))
            .and_then(Value::as_array_mut);
        for entry in entries.into_iter().flatten() {
            let Some(text) = entry.as_str().map(str::to_owned) else {
                continue;
            };
            if let Some(uri) = planner.entries(&text, kind, &format!("spec.deps.{field}"))? {
                *entry = Value::String(uri);
            }
        }
    }
    if let Some(conf) = spec.get_mut("sparkConf").and_then(Value::as_object_mut) {
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

/// What applying one SparkApplication staged, besides the rewritten document.
pub struct Applied {
    pub bundle: String,
    /// The bundle token's Secret, when the pods need one (templates' way; no pod identity).
    pub secret: Option<k8s_openapi::api::core::v1::Secret>,
    pub summary: String,
}

/// Stages the local dependencies and the `spec.deps.packages` of the SparkApplication
/// `document` (paths relative to `base`) as `sparkstage submit` stages a submission, rewrites it,
/// and asks for the init container as `options.inject` says. `None` when it names nothing to
/// stage (left unchanged).
pub async fn stage_application(
    document: &mut Value,
    base: &std::path::Path,
    options: &crate::submit::SubmitOptions,
    client: &crate::stage::ServerClient,
) -> Result<Option<Applied>> {
    use crate::submit::Inject;
    use sparkstage_api::bundles::{BundleEntry, Owner};
    use sparkstage_injection::layout::{DEFAULT_FILES_DIR, DEFAULT_JARS_DIR};
    use sparkstage_injection::{InitArgs, Injection, TokenVolume};

    let name = document["metadata"]["name"]
        .as_str()
        .context("the SparkApplication has no metadata.name")?
        .to_owned();
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| options.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let layout = crate::deps::Layout {
        jars_dir: options
            .jars_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_JARS_DIR.to_owned()),
        files_dir: options
            .files_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_FILES_DIR.to_owned()),
    };
    let mut planner = Planner::new(base, &layout, options.fetch_remote);
    plan_application(document, &mut planner)?;
    let (deps, remote) = planner.finish()?;

    // spec.deps.packages: resolved by the server, its jars join the bundle and spec.deps.jars,
    // and neither the operator's spark-submit nor the driver runs Ivy.
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let spec_deps = document
        .get("spec")
        .and_then(|s| s.get("deps"))
        .cloned()
        .unwrap_or(Value::Null);
    let coordinates = strings(&spec_deps["packages"]);
    let mut stored: Vec<BundleEntry> = Vec::new();
    if !coordinates.is_empty() {
        let response = client
            .resolve(&sparkstage_api::resolve::ResolveRequest {
                coordinates,
                repositories: strings(&spec_deps["repositories"]),
                exclusions: strings(&spec_deps["excludePackages"]),
                mode: None,
            })
            .await?;
        let deps_json = &mut document["spec"]["deps"];
        if let Some(fields) = deps_json.as_object_mut() {
            for field in ["packages", "repositories", "excludePackages"] {
                fields.remove(field);
            }
        }
        if !deps_json["jars"].is_array() {
            deps_json["jars"] = serde_json::json!([]);
        }
        if let Some(jars) = deps_json["jars"].as_array_mut() {
            for artifact in &response.artifacts {
                jars.push(Value::String(format!(
                    "local://{}/{}",
                    layout.dir(sparkstage_api::bundles::TargetDir::Jars),
                    artifact.file_name
                )));
            }
        }
        stored = response
            .artifacts
            .iter()
            .map(|a| BundleEntry {
                name: a.file_name.clone(),
                digest: a.digest,
                size: a.size,
                kind: EntryKind::Jar,
            })
            .collect();
    }
    if deps.is_empty() && stored.is_empty() {
        anyhow::ensure!(
            remote.is_empty(),
            "SparkApplication {namespace}/{name}: --fetch-remote with no local file to stage is \
             not supported yet"
        );
        return Ok(None);
    }
    let files: Vec<crate::stage::StageFile> = deps
        .iter()
        .map(|d| crate::stage::StageFile {
            path: d.path.clone(),
            name: d.name.clone(),
            kind: d.kind,
        })
        .collect();
    let mut labels = std::collections::BTreeMap::new();
    // The operator labels the application's pods with its name.
    labels.insert("sparkoperator.k8s.io/app-name".to_owned(), name.clone());
    let mut cache = crate::stage::DigestCache::load(crate::stage::DigestCache::default_path());
    let staged = crate::stage::stage(
        client,
        &files,
        crate::stage::BundleSpec {
            stored: &stored,
            owner: Some(Owner {
                namespace: Some(namespace.clone()),
                labels,
                spark_app_id: None,
            }),
            ttl: options.ttl.clone(),
        },
        &mut cache,
        options.parallel_uploads.max(1),
        &crate::progress::Progress::new(options.quiet),
    )
    .await?;
    let bundle = staged.bundle.id.clone();
    let info = client.info().await?;
    let secret = (!info.pod_identity)
        .then(|| crate::secret::secret(&namespace, &bundle, &staged.bundle.token));
    let mut args = InitArgs::none();
    args.server = Some(
        options
            .internal_server
            .clone()
            .or_else(|| options.server.clone())
            .context("no staging server")?
            .parse()?,
    );
    args.bundle = Some(bundle.clone());
    args.jars_dir = Some(layout.jars_dir.clone().into());
    args.files_dir = Some(layout.files_dir.clone().into());
    args.sources = remote;
    let injection = Injection {
        image: options.init_image.clone(),
        image_pull_policy: options.init_pull_policy.clone(),
        token: if info.pod_identity {
            TokenVolume::ServiceAccount
        } else {
            TokenVolume::Secret {
                name: crate::secret::secret_name(&bundle),
            }
        },
        args,
    };
    match options.inject {
        Inject::Webhook => ask_webhook(
            document,
            &sparkstage_injection::webhook::annotations(&injection.args, None),
        ),
        Inject::Templates => inject_into_spec(document, &injection)?,
    }
    Ok(Some(Applied {
        bundle,
        secret,
        summary: format!(
            "sparkstage: SparkApplication {namespace}/{name}: bundle {}: {} files, {} uploaded",
            staged.bundle.id,
            staged.entries.len(),
            staged.uploaded_files
        ),
    }))
}

/// `--inject spec`: the init container, its volumes and Spark's mounts written into the
/// SparkApplication (`spec.volumes`, `spec.{driver,executor}.initContainers` and
/// `.volumeMounts`), which the operator puts on the pods.
pub fn inject_into_spec(
    document: &mut Value,
    injection: &sparkstage_injection::Injection,
) -> Result<()> {
    let append = |list: &mut Value, items: Vec<Value>| {
        if !list.is_array() {
            *list = serde_json::json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            list.extend(items);
        }
    };
    let volumes: Vec<Value> = injection
        .volumes()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    append(&mut document["spec"]["volumes"], volumes);
    let init = serde_json::to_value(injection.init_container())?;
    let mounts: Vec<Value> = injection
        .spark_mounts()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    for role in ["driver", "executor"] {
        append(
            &mut document["spec"][role]["initContainers"],
            vec![init.clone()],
        );
        append(&mut document["spec"][role]["volumeMounts"], mounts.clone());
    }
    Ok(())
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
        assert!(
            spec["deps"].get("archives").is_none() && spec["deps"].get("pyFiles").is_none(),
            "nothing written where nothing was: {spec}"
        );
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
