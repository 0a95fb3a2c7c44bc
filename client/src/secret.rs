//! The Secret that carries a bundle's token to the pods, created through the Kubernetes API
//! (`kube`, with the usual kubeconfig or in-cluster configuration), or printed with `--dry-run`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::templates::TOKEN_KEY;

/// The Secret's name for a bundle: a valid DNS subdomain, unique per bundle.
pub fn secret_name(bundle: &str) -> String {
    format!("sparkstage-{}", bundle.to_ascii_lowercase())
}

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
