//! `sparkstage apply -f FILE|-`: what `sparkctl create` did for the spark-operator's
//! SparkApplications. Their local dependencies are found and rewritten as `sparkstage submit`
//! rewrites a submission (the same [`Planner`] and [`crate::stage::stage`]), `spec.deps.packages`
//! is resolved on the server, the init container is asked for through the driver's and
//! executors' labels and annotations or written into the spec (the one pod injection of
//! `sparkstage_injection`), and the documents are applied through the Kubernetes API with
//! server-side apply (field manager `sparkstage`), or printed.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use sparkstage_api::bundles::EntryKind;

use crate::deps::{LISTS, Planner};

pub const API_VERSION: &str = "sparkoperator.k8s.io/v1beta2";
pub const KIND: &str = "SparkApplication";
/// The SparkApplication's resource (plural) in the API.
pub const PLURAL: &str = "sparkapplications";
/// The label the operator puts on an application's pods (its name): the bundle's owner.
pub const APP_NAME_LABEL: &str = "sparkoperator.k8s.io/app-name";
/// Server-side apply's field manager: the fields `sparkstage apply` set are its own.
pub const FIELD_MANAGER: &str = "sparkstage";

/// What `sparkstage apply` asks of the Kubernetes API in the application's namespace, besides
/// the other kinds a file holds (the user's own rights): the Role `deploy/spark-namespace`
/// binds to submitters grants this and [`crate::secret::KUBERNETES_ACCESS`]
/// (`client/tests/deploy.rs` checks it).
pub const APPLY_ACCESS: [(&str, &str, &str); 5] = [
    // (API group, resource, verb)
    ("", "secrets", "create"), // the bundle token's Secret
    ("", "secrets", "get"),    // the existing Secret of a retried apply
    ("", "secrets", "patch"),  // ownerReferences to the SparkApplication
    // Server-side apply is a PATCH, and one that creates is authorized as a create too.
    ("sparkoperator.k8s.io", "sparkapplications", "patch"),
    ("sparkoperator.k8s.io", "sparkapplications", "create"),
];

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

/// The text of each document of `text` as written (comments and key order kept), for printing
/// the documents this command does not change exactly as they were: `documents[i]`'s text when
/// splitting at the document markers (`---` at the start of a line, where YAML ends any block
/// scalar, and `...` ends a document) reads back as the same documents, else `None` (they are printed from their value).
pub fn document_texts(text: &str, documents: &[Value]) -> Vec<Option<String>> {
    let mut chunks = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let marker = |m: &str| {
            line.strip_prefix(m).filter(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace())
            })
        };
        // `---` starts a document (it may go on on the same line); `...` ends one.
        match (marker("---"), marker("...")) {
            (Some(rest), _) => chunks.push(match rest.trim() {
                "" => String::new(),
                _ => rest.trim_start_matches([' ', '\t']).to_owned(),
            }),
            (None, Some(_)) => chunks.push(String::new()),
            (None, None) => chunks.last_mut().map_or((), |c| c.push_str(line)),
        }
    }
    let mut texts = Vec::new();
    for chunk in chunks {
        match serde_norway::from_str::<Value>(&chunk) {
            Ok(Value::Null) => {}
            Ok(value) => texts.push((value, chunk)),
            Err(_) => return vec![None; documents.len()],
        }
    }
    let agree = texts.len() == documents.len()
        && texts
            .iter()
            .zip(documents)
            .all(|((value, _), d)| value == d);
    match agree {
        true => texts.into_iter().map(|(_, text)| Some(text)).collect(),
        false => vec![None; documents.len()],
    }
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

/// Where a SparkApplication names packages: `spec.deps` fields and the `sparkConf` keys they
/// stand for (packages, repositories, exclusions).
const PACKAGE_SETTINGS: [(&str, &str); 3] = [
    ("packages", "spark.jars.packages"),
    ("repositories", "spark.jars.repositories"),
    ("excludePackages", "spark.jars.excludes"),
];

/// The resolution the application asks for, if it names packages: each setting from
/// `spec.deps` when it lists something, else from `sparkConf` (comma-separated), as the operator's
/// `--packages` / `--repositories` / `--exclude-packages` win over the configuration.
fn packages_of(document: &Value) -> Option<sparkstage_api::resolve::ResolveRequest> {
    let spec = document.get("spec")?;
    let setting = |(field, key): (&str, &str)| -> Vec<String> {
        let listed: Vec<String> = spec["deps"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect();
        match listed.is_empty() {
            false => listed,
            true => spec["sparkConf"][key]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    };
    let [packages, repositories, exclusions] = PACKAGE_SETTINGS.map(setting);
    (!packages.is_empty()).then_some(sparkstage_api::resolve::ResolveRequest {
        coordinates: packages,
        repositories,
        exclusions,
        mode: None,
    })
}

/// What applying one SparkApplication staged, besides the rewritten document.
pub struct Applied {
    /// The bundle staged; none when the init container only fetches remote files.
    pub bundle: Option<String>,
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

    // spec.deps.packages (else sparkConf's spark.jars.packages, as spark-submit's --packages wins
    // over it): resolved by the server, its jars join the bundle and spec.deps.jars, and
    // neither the operator's spark-submit nor the driver runs Ivy.
    let mut stored: Vec<BundleEntry> = Vec::new();
    if let Some(request) = packages_of(document) {
        let response = client.resolve(&request).await?;
        if let Some(fields) = document["spec"]["deps"].as_object_mut() {
            for (field, _) in PACKAGE_SETTINGS {
                fields.remove(field);
            }
        }
        if let Some(conf) = document["spec"]
            .get_mut("sparkConf")
            .and_then(Value::as_object_mut)
        {
            for (_, key) in PACKAGE_SETTINGS {
                conf.remove(key);
            }
        }
        let deps_json = &mut document["spec"]["deps"];
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
        stored = crate::packages::bundle_entries(&response.artifacts);
    }
    if deps.is_empty() && stored.is_empty() && remote.is_empty() {
        return Ok(None);
    }
    let (remote, sources) = crate::submit::split_remote(client, options.remote, remote).await?;
    // Only remote files the init container fetches itself: no bundle.
    let staged = if deps.is_empty() && stored.is_empty() && sources.is_empty() {
        None
    } else {
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
        labels.insert(APP_NAME_LABEL.to_owned(), name.clone());
        let mut cache = crate::stage::DigestCache::load(crate::stage::DigestCache::default_path());
        Some(
            crate::stage::stage(
                client,
                &files,
                crate::stage::BundleSpec {
                    stored: &stored,
                    sources,
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
            .await?,
        )
    };
    let pod_identity = match &staged {
        Some(_) => client.info().await?.pod_identity,
        None => false,
    };
    let bundle = staged.as_ref().map(|s| s.bundle.id.clone());
    let secret = staged
        .as_ref()
        .filter(|_| !pod_identity)
        .map(|s| crate::secret::secret(&namespace, &s.bundle.id, &s.bundle.token));
    let mut args = InitArgs::none();
    if bundle.is_some() {
        args.server = Some(
            options
                .internal_server
                .clone()
                .or_else(|| options.server.clone())
                .context("no staging server")?
                .parse()?,
        );
    }
    args.bundle = bundle.clone();
    args.jars_dir = Some(layout.jars_dir.clone().into());
    args.files_dir = Some(layout.files_dir.clone().into());
    args.sources = remote;
    let injection = Injection {
        image: options.init_image.clone(),
        image_pull_policy: options.init_pull_policy.clone(),
        // Without a bundle there is no token to mount (`Injection::volumes`).
        token: match (&bundle, pod_identity) {
            (Some(bundle), false) => TokenVolume::Secret {
                name: crate::secret::secret_name(bundle),
            },
            _ => TokenVolume::ServiceAccount,
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
    let summary = match &staged {
        Some(staged) => format!(
            "sparkstage: SparkApplication {namespace}/{name}: bundle {}: {} files, {} uploaded",
            staged.bundle.id,
            staged.entries.len(),
            staged.uploaded_files
        ),
        None => format!(
            "sparkstage: SparkApplication {namespace}/{name}: {} remote files for the init \
             container, nothing to stage",
            injection.args.sources.len()
        ),
    };
    Ok(Some(Applied {
        bundle,
        secret,
        summary,
    }))
}

/// `--inject spec`: the init container, its volumes and Spark's mounts written into the
/// SparkApplication (`spec.volumes`, `spec.{driver,executor}.initContainers` and
/// `.volumeMounts`), which the operator's pod webhook puts on the pods. That webhook adds a
/// volume of `spec.volumes` only when the role's `volumeMounts` name it (mounts of init
/// containers do not count), so the token's volume is mounted, read-only, in Spark's container
/// too: without it the pod would name a volume it does not have.
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
        .into_iter()
        .chain(injection.token_mount())
        .map(|m| serde_json::to_value(&m))
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

/// The API resource of `document`'s kind: SparkApplications' is known (no discovery, so that
/// a missing CRD is a clear error of its own), other kinds are looked up in the API's discovery
/// documents. `true` with a namespaced kind.
async fn resource_of(
    client: &kube::Client,
    document: &Value,
) -> Result<(kube::discovery::ApiResource, bool)> {
    use kube::core::GroupVersionKind;
    use kube::discovery::{ApiResource, Scope, pinned_kind};
    let api_version = document["apiVersion"].as_str().unwrap_or_default();
    let kind = document["kind"].as_str().unwrap_or_default();
    anyhow::ensure!(
        !api_version.is_empty() && !kind.is_empty(),
        "a document without apiVersion or kind"
    );
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    if is_application(document) {
        return Ok((ApiResource::from_gvk_with_plural(&gvk, PLURAL), true));
    }
    let (resource, capabilities) = pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("the Kubernetes API does not serve {api_version} {kind}"))?;
    Ok((resource, capabilities.scope == Scope::Namespaced))
}

/// Applies `document` with server-side apply (field manager [`FIELD_MANAGER`]) in
/// `namespace` when it names none, and returns the object as the API server stored it. With
/// `force`, fields another manager owns are taken over (kubectl's `--force-conflicts`).
pub async fn apply_document(
    client: &kube::Client,
    document: &Value,
    namespace: &str,
    force: bool,
) -> Result<kube::api::DynamicObject> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let (resource, namespaced) = resource_of(client, document).await?;
    let name = document["metadata"]["name"]
        .as_str()
        .with_context(|| format!("a {} without metadata.name", resource.kind))?;
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .unwrap_or(namespace);
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force {
        params = params.force();
    }
    let what = if namespaced {
        format!("{} {namespace}/{name}", resource.kind)
    } else {
        format!("{} {name}", resource.kind)
    };
    match api.patch(name, &params, &Patch::Apply(document)).await {
        Ok(object) => Ok(object),
        Err(kube::Error::Api(status)) if status.code == 404 && is_application(document) => {
            anyhow::bail!(
                "the Kubernetes API has no SparkApplications ({}): is the spark-operator's \
                 CustomResourceDefinition installed?",
                status.message
            )
        }
        Err(kube::Error::Api(status)) if status.code == 409 => anyhow::bail!(
            "applying {what}: {} (another field manager owns these fields; --force-conflicts \
             takes them over)",
            status.message
        ),
        Err(kube::Error::Api(status)) => anyhow::bail!(
            "the Kubernetes API refused to apply {what}: {} ({}, HTTP {})",
            status.message,
            status.reason,
            status.code
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("applying {what}"))),
    }
}

/// Where the documents go.
pub enum Target {
    /// Printed to standard output as YAML (`--dry-run`): the Secrets first, then the documents.
    Print,
    /// Applied through the Kubernetes API.
    Apply { client: kube::Client, force: bool },
}

/// `sparkstage apply`: stages every SparkApplication of `documents` (paths relative to `base`)
/// before anything is applied, so that a missing file applies nothing, then prints or applies
/// them in order. An application's token Secret is created before it, and once the
/// SparkApplication exists it becomes the Secret's owner (deleted with it).
pub async fn run(
    documents: &mut [Value],
    texts: &[Option<String>],
    base: &std::path::Path,
    options: &crate::submit::SubmitOptions,
    server: &crate::stage::ServerClient,
    target: Target,
) -> Result<()> {
    let mut secrets = Vec::new();
    let mut changed = Vec::new();
    for document in documents.iter_mut() {
        if document["apiVersion"] == API_VERSION
            && document["kind"] == "ScheduledSparkApplication"
            && !options.quiet
        {
            eprintln!(
                "sparkstage: warning: ScheduledSparkApplication {} is applied as it is: a \
                 schedule outlives the pods a bundle is kept for, so its local files and packages \
                 are not staged; stage them with `sparkstage upload --ttl` and name the bundle in \
                 its template's annotations, or bake them into the image",
                document["metadata"]["name"].as_str().unwrap_or("?")
            );
        }
        let staged = if is_application(document) {
            stage_application(document, base, options, server).await?
        } else {
            None
        };
        if let Some(applied) = &staged
            && !options.quiet
        {
            eprintln!("{}", applied.summary);
        }
        changed.push(staged.is_some());
        secrets.push(staged.and_then(|a| a.secret));
    }
    let namespace = options.namespace.as_deref().unwrap_or("default");
    match target {
        Target::Print => {
            let mut out = Vec::new();
            for secret in secrets.iter().flatten() {
                out.push(serde_norway::to_string(secret)?);
            }
            for (i, document) in documents.iter().enumerate() {
                // What was not changed is printed as it was written.
                match texts.get(i).cloned().flatten() {
                    Some(text) if !changed[i] => out.push(text),
                    _ => out.push(serde_norway::to_string(document)?),
                }
            }
            for text in &mut out {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            print!("{}", out.join("---\n"));
        }
        Target::Apply { client, force } => {
            for (document, secret) in documents.iter().zip(&secrets) {
                if let Some(secret) = secret {
                    crate::secret::create(client.clone(), secret).await?;
                }
                let object = apply_document(&client, document, namespace, force).await?;
                if let Some(secret) = secret {
                    let owner = owner_reference(&object)?;
                    crate::secret::set_owner(
                        client.clone(),
                        secret.metadata.namespace.as_deref().unwrap_or(namespace),
                        secret.metadata.name.as_deref().unwrap_or_default(),
                        owner,
                    )
                    .await?;
                }
                let kind = document["kind"].as_str().unwrap_or_default().to_lowercase();
                let group = document["apiVersion"]
                    .as_str()
                    .and_then(|v| v.rsplit_once('/'))
                    .map(|(group, _)| format!(".{group}"))
                    .unwrap_or_default();
                println!(
                    "{kind}{group}/{} serverside-applied",
                    object.metadata.name.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// The applied SparkApplication as the owner of what was made for it (the token's Secret).
pub fn owner_reference(
    object: &kube::api::DynamicObject,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    Ok(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            name: object
                .metadata
                .name
                .clone()
                .context("the applied SparkApplication has no name")?,
            uid: object
                .metadata
                .uid
                .clone()
                .context("the applied SparkApplication has no uid")?,
            controller: Some(false),
            block_owner_deletion: Some(false),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deps::Layout;

    #[test]
    fn packages_come_from_the_deps_else_from_the_configuration() -> Result<()> {
        let document = |deps: &str, conf: &str| -> Result<Value> {
            Ok(read_documents(&format!(
                "apiVersion: {API_VERSION}\nkind: {KIND}\nmetadata: {{name: a}}\nspec:\n  \
                 deps: {deps}\n  sparkConf: {conf}\n"
            ))?
            .remove(0))
        };
        let conf = "{spark.jars.packages: \"g:c:1, g:d:2\", spark.jars.repositories: \"https://r\", \
                    spark.jars.excludes: \"g:x\"}";
        let request = packages_of(&document("{}", conf)?).context("packages")?;
        assert_eq!(request.coordinates, ["g:c:1", "g:d:2"]);
        assert_eq!(request.repositories, ["https://r"]);
        assert_eq!(request.exclusions, ["g:x"]);
        // The deps win, setting by setting, as spark-submit's flags win over --conf.
        let request = packages_of(&document(
            "{packages: [\"g:a:1\"], repositories: []}",
            conf,
        )?)
        .context("packages")?;
        assert_eq!(request.coordinates, ["g:a:1"]);
        assert_eq!(request.repositories, ["https://r"]);
        assert!(packages_of(&document("{repositories: [\"https://r\"]}", "{}")?).is_none());
        Ok(())
    }

    #[test]
    fn documents_keep_their_text() -> Result<()> {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap # why\nmetadata: {name: a}\n\
                    data:\n  script: |\n    echo one\n    ---\n    echo two\n--- {kind: Other, z: 1, a: 2}\n\
                    ---\n...\n";
        let documents = read_documents(text)?;
        assert_eq!(documents.len(), 2);
        let texts = document_texts(text, &documents);
        assert_eq!(
            texts,
            [
                Some(
                    "apiVersion: v1\nkind: ConfigMap # why\nmetadata: {name: a}\ndata:\n  script: |\n    \
                     echo one\n    ---\n    echo two\n"
                        .to_owned()
                ),
                Some("{kind: Other, z: 1, a: 2}\n".to_owned()),
            ]
        );
        // A split that does not read back as the same documents gives no texts.
        let documents = read_documents("a: 1\n")?;
        assert_eq!(document_texts("a: 2\n", &documents), [None]);
        Ok(())
    }

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
