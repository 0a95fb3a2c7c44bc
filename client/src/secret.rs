//! The Secret that carries a bundle's token to the pods, created through the Kubernetes API
//! (`kube`, with the usual kubeconfig or in-cluster configuration), or printed with `--dry-run`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sparkstage_api::bundles::BUNDLE_LABEL;

use sparkstage_injection::pod::TOKEN_KEY;
pub use sparkstage_injection::pod::secret_name;

/// The Secret holding `token` for `bundle` in `namespace`.
pub fn secret(namespace: &str, bundle: &str, token: &str) -> Secret {
    let mut labels = BTreeMap::new();
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "sparkstage".to_owned(),
    );
    labels.insert("sparkstage.io/bundle".to_owned(), bundle.to_owned());
    let mut data = BTreeMap::new();
    data.insert(TOKEN_KEY.to_owned(), ByteString(token.as_bytes().to_vec()));
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(bundle)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        immutable: Some(true),
        data: Some(data),
        ..Secret::default()
    }
}

/// Creates `secret` with `client`. A Secret of that name that exists already is left as it is
/// when it holds the same token (a retried submit), and is an error otherwise.
pub async fn create(client: kube::Client, secret: &Secret) -> Result<()> {
    let namespace = secret.metadata.namespace.as_deref().unwrap_or("default");
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api
                .get(name)
                .await
                .with_context(|| format!("reading the existing Secret {namespace}/{name}"))?;
            if existing.data == secret.data {
                Ok(())
            } else {
                anyhow::bail!(
                    "Secret {namespace}/{name} exists with another token; delete it or stage again"
                )
            }
        }
        Err(kube::Error::Api(status)) => anyhow::bail!(
            "the Kubernetes API refused to create Secret {namespace}/{name}: {} ({}, HTTP {})",
            status.message,
            status.reason,
            status.code
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "creating Secret {namespace}/{name} through the Kubernetes API"
        ))),
    }
}

/// The driver pod a Secret was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub pod: String,
    pub uid: String,
}

/// The application's driver pod, when it exists: the pod labelled with the bundle and
/// `spark-role=driver`; of several (a driver recreated by an operator), the oldest.
pub async fn driver_pod(
    client: kube::Client,
    namespace: &str,
    bundle: &str,
) -> Result<Option<Adopted>> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let selector = format!("{BUNDLE_LABEL}={bundle},spark-role=driver");
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing pods {selector} in namespace {namespace}"))?;
    let mut drivers: Vec<&Pod> = listed
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    drivers.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    Ok(drivers.first().and_then(|p| {
        Some(Adopted {
            pod: p.metadata.name.clone()?,
            uid: p.metadata.uid.clone()?,
        })
    }))
}

impl Adopted {
    /// The driver pod as an owner: Kubernetes' garbage collector deletes what it owns with it.
    pub fn owner(&self) -> OwnerReference {
        OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: self.pod.clone(),
            uid: self.uid.clone(),
            controller: Some(false),
            block_owner_deletion: Some(false),
        }
    }
}

/// Makes `owner` (the driver pod, or `sparkstage apply`'s SparkApplication) the owner of the
/// Secret `name`, so that Kubernetes' garbage collector deletes the Secret with it. Only
/// `metadata.ownerReferences` changes (a merge patch), which an immutable Secret allows.
pub async fn set_owner(
    client: kube::Client,
    namespace: &str,
    name: &str,
    owner: OwnerReference,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
    match secrets
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => anyhow::bail!(
            "the Kubernetes API refused to set the owner of Secret {namespace}/{name}: {} ({}, \
             HTTP {})",
            status.message,
            status.reason,
            status.code
        ),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("setting the owner of Secret {namespace}/{name}"))),
    }
}

/// Waits (looking every `every`, at most `within`) for the driver pod of `bundle`, then makes it
/// the owner of the bundle's Secret. `Ok(None)`: no driver pod appeared in time.
pub async fn adopt(
    client: kube::Client,
    namespace: &str,
    bundle: &str,
    within: Duration,
    every: Duration,
) -> Result<Option<Adopted>> {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(driver) = driver_pod(client.clone(), namespace, bundle).await? {
            set_owner(client, namespace, &secret_name(bundle), driver.owner()).await?;
            return Ok(Some(driver));
        }
        if started.elapsed() + every > within {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// What `sparkstage submit` asks of the Kubernetes API in the application's namespace, call by
/// call: the Role `deploy/spark-namespace` binds to submitters grants exactly this
/// (`client/tests/deploy.rs` checks it). A new call comes with a line here.
pub const KUBERNETES_ACCESS: [(&str, &str, &str); 4] = [
    // (API group, resource, verb)
    ("", "secrets", "create"), // create: the bundle token's Secret
    ("", "secrets", "get"),    // create: the existing Secret of a retried submit
    ("", "secrets", "patch"),  // set_owner: ownerReferences to the driver pod
    ("", "pods", "list"),      // driver_pod: the bundle's driver, by label
];
