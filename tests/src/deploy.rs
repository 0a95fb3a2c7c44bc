//! `deploy/` as `kubectl kustomize` (kubectl 1.32, kustomize v5) renders it: the documents of a
//! kustomization, and strict readers for the custom resources of cert-manager and the
//! Prometheus operator, whose types `k8s_openapi` does not have.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// kubectl, from `KUBECTL` or the `PATH`; it must embed kustomize v5 (kubectl 1.27 and later),
/// which components need.
pub fn kubectl() -> Result<PathBuf> {
    let kubectl =
        std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
    let output = Command::new(&kubectl)
        .args(["version", "--client"])
        .output()
        .with_context(|| {
            format!(
                "{} not found: the deploy/ tests need kubectl 1.27 or later (kustomize v5); \
                 scripts/test-deps.sh checks for it",
                kubectl.display()
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let kustomize = text
        .lines()
        .find_map(|l| l.strip_prefix("Kustomize Version: v"))
        .context("kubectl does not say its kustomize version")?;
    let major: u32 = kustomize
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .context("kustomize version")?;
    ensure!(
        major >= 5,
        "kubectl embeds kustomize v{kustomize}; deploy/ needs v5 (kubectl 1.27 or later)"
    );
    Ok(kubectl)
}

/// The documents `kubectl kustomize DIR` renders (DIR relative to `deploy/`, or absolute).
pub fn render(dir: impl AsRef<Path>) -> Result<Vec<Value>> {
    let dir = deploy_dir().join(dir);
    let output = Command::new(kubectl()?)
        .arg("kustomize")
        .arg(&dir)
        .output()?;
    if !output.status.success() {
        bail!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// `value` read as `T` and written back: an error when a field was lost on the way (a
/// misspelled or misplaced field, which the API server would drop or refuse).
pub fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T> {
    let typed: T = serde_json::from_value(value.clone())?;
    let back = serde_json::to_value(&typed)?;
    if let Some(path) = first_difference(value, &back, String::new()) {
        bail!("{path} does not survive a round trip through its type");
    }
    Ok(typed)
}

/// Where `a` has something `b` does not (the path), if anywhere.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            Some(w) => first_difference(v, w, format!("{at}.{k}")),
            // An empty map or list written out is the same as none.
            None if v.as_object().is_some_and(|o| o.is_empty()) => None,
            None => Some(format!("{at}.{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(at),
    }
}

/// The documents of `kind` (and its name).
pub fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name}"))
}

// cert-manager v1 and the Prometheus operator's monitoring.coreos.com/v1: the fields deploy/
// uses, strictly (an unknown field is an error, as the API server's schema would prune it).

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Custom<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    pub spec: S,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaIssuer {
    pub secret_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub issuer_ref: IssuerRef,
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerRef {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrivateKey {
    pub algorithm: String,
    pub size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// Reads `document` with the type of its kind (a `k8s_openapi` type, or one of the strict
/// readers above); an unknown kind is an error, so that a new kind comes with its check.
pub fn check_document(document: &Value) -> Result<()> {
    use k8s_openapi::api::{admissionregistration, apps, core, networking, policy, rbac};
    let api_version = document["apiVersion"].as_str().unwrap_or_default();
    let kind = document["kind"].as_str().unwrap_or_default();
    let name = document["metadata"]["name"].as_str().unwrap_or_default();
    let checked = match (api_version, kind) {
        ("v1", "Namespace") => round_trip::<core::v1::Namespace>(document).map(drop),
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(document).map(drop),
        ("v1", "Service") => round_trip::<core::v1::Service>(document).map(drop),
        ("v1", "PersistentVolumeClaim") => {
            round_trip::<core::v1::PersistentVolumeClaim>(document).map(drop)
        }
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(document).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            round_trip::<rbac::v1::ClusterRole>(document).map(drop)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(document).map(drop)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            round_trip::<rbac::v1::Role>(document).map(drop)
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            round_trip::<rbac::v1::RoleBinding>(document).map(drop)
        }
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            round_trip::<admissionregistration::v1::MutatingWebhookConfiguration>(document)
                .map(drop)
        }
        ("policy/v1", "PodDisruptionBudget") => {
            round_trip::<policy::v1::PodDisruptionBudget>(document).map(drop)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            round_trip::<networking::v1::NetworkPolicy>(document).map(drop)
        }
        ("cert-manager.io/v1", "Issuer") => round_trip::<Custom<IssuerSpec>>(document).map(drop),
        ("cert-manager.io/v1", "Certificate") => {
            round_trip::<Custom<CertificateSpec>>(document).map(drop)
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            round_trip::<Custom<ServiceMonitorSpec>>(document).map(drop)
        }
        _ => bail!("no check for {api_version} {kind}"),
    };
    checked.with_context(|| format!("{kind} {name}"))
}

/// What a Role or ClusterRole grants: (API group, resource, verb) triples.
pub fn grants(role: &Value) -> Result<std::collections::BTreeSet<(String, String, String)>> {
    let mut granted = std::collections::BTreeSet::new();
    for rule in role["rules"].as_array().context("rules")? {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        ensure!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "rules name resources by kind only"
        );
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    ensure!(
                        group != "*" && resource != "*" && verb != "*",
                        "no wildcard in a rule"
                    );
                    granted.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    Ok(granted)
}

/// A CustomResourceDefinition's structural OpenAPI v3 schema as a JSON Schema (draft 4, which
/// OpenAPI v3's schema objects follow) that refuses what the API server would not keep: an
/// object's field the schema does not name is an error (the API server prunes it silently)
/// unless the schema keeps unknown fields, `x-kubernetes-int-or-string` is an integer or a
/// string, and `nullable` admits `null`.
pub fn strict_schema(schema: &Value) -> Value {
    let Some(fields) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (name, value) in fields {
        let value = match name.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), strict_schema(v)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" if value.is_object() => strict_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(strict_schema)
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(name.clone(), value);
    }
    let is_object = schema["type"] == "object";
    let keeps_unknown = schema["x-kubernetes-preserve-unknown-fields"] == true;
    if is_object && !keeps_unknown && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    if schema["x-kubernetes-int-or-string"] == true {
        out.insert(
            "anyOf".to_owned(),
            serde_json::json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if schema["nullable"] == true
        && let Some(kind) = out.get("type").cloned()
    {
        out.insert("type".to_owned(), serde_json::json!([kind, "null"]));
    }
    Value::Object(out)
}

/// Checks `value` against a CustomResourceDefinition's structural schema as the API server
/// reads it ([`strict_schema`], validated by the `jsonschema` crate); the error lists every
/// place that does not fit.
pub fn check_against_schema(schema: &Value, value: &Value, at: &str) -> Result<()> {
    let validator = jsonschema::draft4::new(&strict_schema(schema))
        .map_err(|e| anyhow::anyhow!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{at}{}: {e}", e.instance_path()))
        .collect();
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// The schema of the version `version` of the CustomResourceDefinition in `crd` (YAML).
pub fn crd_schema(crd: &str, version: &str) -> Result<Value> {
    let crd: Value = serde_norway::from_str(crd)?;
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .with_context(|| format!("the CustomResourceDefinition has no version {version}"))
}

/// A custom resource against its schema: `metadata` as the API server reads every object's (a
/// `k8s_openapi` ObjectMeta, whole), the rest by [`check_against_schema`].
pub fn check_custom_resource(schema: &Value, document: &Value, name: &str) -> Result<()> {
    round_trip::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(&document["metadata"])
        .with_context(|| format!("{name}.metadata"))?;
    let mut rest = document.clone();
    rest["metadata"] = serde_json::json!({});
    check_against_schema(schema, &rest, name)
}
