//! `deploy/` rendered by the real `kubectl kustomize` (kubectl 1.32 with kustomize v5) and checked
//! against the code it deploys. No cluster can run here; these checks stand in for an apply:
//! every object reads as its type and back without losing a field, the settings are ones the
//! server takes (parsed by its own flag parser), the webhook's path, port and selectors are the
//! server's, the init image is the client's default, and the RBAC is exactly what the server's
//! code calls.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use clap::{CommandFactory, Parser};
use serde_json::Value;
use sparkstage_server::config::Config;
use sparkstage_server::kube_access::SERVER_ACCESS;
use sparkstage_tests::deploy::{check_document, find, render};

const OVERLAYS: [&str; 2] = ["overlays/local-disk", "overlays/s3"];

/// Every kustomization, and one with the optional Prometheus component.
#[test]
fn every_kustomization_renders_into_objects_of_their_types() -> Result<()> {
    // kustomize takes only relative paths to other kustomizations.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let deploy = sparkstage_tests::deploy::deploy_dir().canonicalize()?;
    let up = dir.path().canonicalize()?.components().count() - 1;
    let relative = format!(
        "{}{}",
        "../".repeat(up),
        deploy.to_str().context("utf-8")?.trim_start_matches('/')
    );
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n\
             - {relative}/overlays/local-disk\ncomponents:\n- {relative}/components/prometheus\n"
        ),
    )?;
    let with_prometheus = dir.path().to_str().context("utf-8")?.to_owned();
    for kustomization in [
        "base",
        OVERLAYS[0],
        OVERLAYS[1],
        "spark-namespace",
        &with_prometheus,
    ] {
        let documents = render(kustomization)?;
        ensure!(!documents.is_empty(), "{kustomization} renders nothing");
        for document in &documents {
            check_document(document).with_context(|| kustomization.to_owned())?;
        }
    }
    Ok(())
}

/// A misspelled field is found (the check can fail).
#[test]
fn a_misspelled_field_is_an_error() -> Result<()> {
    let documents = render(OVERLAYS[0])?;
    let mut deployment = find(&documents, "Deployment", "sparkstage")?.clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] =
        Value::from("Always");
    ensure!(check_document(&deployment).is_err());
    let mut certificate = find(&documents, "Certificate", "sparkstage-webhook")?.clone();
    certificate["spec"]["dnsName"] = Value::from("x");
    ensure!(check_document(&certificate).is_err());
    Ok(())
}

/// The server's container, its environment as (name, value) (values from fields as `None`).
fn server_env(documents: &[Value]) -> Result<Vec<(String, Option<String>)>> {
    let deployment = find(documents, "Deployment", "sparkstage")?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    ensure!(container["name"] == "server");
    ensure!(
        container.get("args").is_none() && container.get("command").is_none(),
        "settings are environment variables"
    );
    Ok(container["env"]
        .as_array()
        .context("env")?
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["value"].as_str().map(str::to_owned),
            )
        })
        .collect())
}

/// Every `SPARKSTAGE_*` variable is a flag of the server, and the server's own parser takes the
/// values the overlay gives.
#[test]
fn the_server_takes_every_setting_the_deployment_gives() -> Result<()> {
    let command = Config::command();
    for overlay in OVERLAYS {
        let env = server_env(&render(overlay)?)?;
        let mut argv = vec!["sparkstage-server".to_owned()];
        for (name, value) in env.iter().filter(|(n, _)| n.starts_with("SPARKSTAGE_")) {
            let arg = command
                .get_arguments()
                .find(|a| a.get_env().and_then(|e| e.to_str()) == Some(name.as_str()))
                .with_context(|| format!("{overlay}: {name} is no setting of sparkstage-server"))?;
            let long = arg.get_long().context("a flag")?;
            let takes_value = arg.get_action().takes_values();
            // A value from a field (the namespace) stands in as a word.
            let value = value.clone().unwrap_or_else(|| "from-a-field".to_owned());
            if takes_value {
                argv.push(format!("--{long}={value}"));
            } else {
                ensure!(value == "true", "{overlay}: {name} is a switch: \"true\"");
                argv.push(format!("--{long}"));
            }
        }
        let config = Config::try_parse_from(&argv)
            .map_err(|e| anyhow::anyhow!("{overlay}: {argv:?}: {e}"))?;
        ensure!(
            config.kubernetes,
            "{overlay}: owner tracking and pod identity are on"
        );
        ensure!(
            config.webhook_listen.is_some(),
            "{overlay}: the webhook is served"
        );
        ensure!(
            config.upload_token_file.is_some(),
            "{overlay}: uploads need the token"
        );
        ensure!(!config.insecure);
    }
    Ok(())
}

/// The switch reaches the server from its variable (clap reads `SPARKSTAGE_KUBERNETES=true`).
#[test]
fn the_kubernetes_switch_is_read_from_its_variable() -> Result<()> {
    let output = std::process::Command::new(sparkstage_tests::server::binary("sparkstage-server")?)
        .env("SPARKSTAGE_KUBERNETES", "true")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("SPARKSTAGE_STORAGE", "memory://")
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "{stderr}");
    ensure!(stderr.contains("--kubernetes"), "{stderr}");
    Ok(())
}

/// The webhook configuration points at what the server serves, and selects what it expects.
#[test]
fn the_webhook_configuration_is_the_servers() -> Result<()> {
    for overlay in OVERLAYS {
        let documents = render(overlay)?;
        let env = server_env(&documents)?;
        let get = |name: &str| {
            env.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
                .with_context(|| format!("{overlay}: no {name}"))
        };
        let configuration = find(&documents, "MutatingWebhookConfiguration", "sparkstage")?;
        let webhook = &configuration["webhooks"][0];
        let service = &webhook["clientConfig"]["service"];
        ensure!(service["path"] == sparkstage_server::webhook::ADMISSION_PATH);
        let svc = find(
            &documents,
            "Service",
            service["name"].as_str().unwrap_or_default(),
        )?;
        ensure!(svc["metadata"]["namespace"] == service["namespace"]);
        let port = svc["spec"]["ports"]
            .as_array()
            .context("ports")?
            .iter()
            .find(|p| p["port"] == service["port"])
            .context("the webhook's Service port")?;
        let deployment = find(&documents, "Deployment", "sparkstage")?;
        let container_port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .context("ports")?
            .iter()
            .find(|p| p["name"] == port["targetPort"])
            .context("the Service's target port")?;
        let listen = get("SPARKSTAGE_WEBHOOK_LISTEN")?;
        ensure!(
            listen.ends_with(&format!(":{}", container_port["containerPort"])),
            "{overlay}: the webhook listens on {listen}"
        );
        ensure!(
            webhook["objectSelector"]["matchLabels"][sparkstage_injection::webhook::INJECT_LABEL]
                == "true"
        );
        let excluded: BTreeSet<&str> =
            webhook["namespaceSelector"]["matchExpressions"][0]["values"]
                .as_array()
                .context("values")?
                .iter()
                .filter_map(Value::as_str)
                .collect();
        ensure!(
            excluded == BTreeSet::from(["kube-system", "sparkstage-system"]),
            "{excluded:?}"
        );
        ensure!(webhook["sideEffects"] == "None" && webhook["timeoutSeconds"] == 5);
        ensure!(webhook["reinvocationPolicy"] == "IfNeeded" && webhook["failurePolicy"] == "Fail");
        ensure!(webhook["admissionReviewVersions"] == serde_json::json!(["v1"]));
        ensure!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
                == "sparkstage-system/sparkstage-webhook"
        );
        // The URL pods reach the server by is the Service's API port.
        let api_port = svc["spec"]["ports"]
            .as_array()
            .context("ports")?
            .iter()
            .find(|p| p["name"] == "api")
            .context("api port")?;
        let pod_url: url::Url = get("SPARKSTAGE_POD_SERVER_URL")?.parse()?;
        let service_host = format!(
            "{}.{}.svc",
            svc["metadata"]["name"].as_str().unwrap_or_default(),
            svc["metadata"]["namespace"].as_str().unwrap_or_default()
        );
        ensure!(
            pod_url.host_str() == Some(service_host.as_str()),
            "{pod_url}"
        );
        ensure!(pod_url.port().map(u64::from) == api_port["port"].as_u64());
        // The certificate names the Service.
        let certificate = find(&documents, "Certificate", "sparkstage-webhook")?;
        ensure!(
            certificate["spec"]["dnsNames"][0]
                == format!(
                    "{}.{}.svc",
                    service["name"].as_str().unwrap_or_default(),
                    service["namespace"].as_str().unwrap_or_default()
                )
        );
    }
    Ok(())
}

/// The init image the server writes into pods is the client's default, and both images are
/// of this version.
#[test]
fn the_images_are_this_versions() -> Result<()> {
    for overlay in OVERLAYS {
        let documents = render(overlay)?;
        let env = server_env(&documents)?;
        let init = env
            .iter()
            .find(|(n, _)| n == "SPARKSTAGE_INIT_IMAGE")
            .and_then(|(_, v)| v.clone())
            .context("SPARKSTAGE_INIT_IMAGE")?;
        ensure!(
            init == sparkstage_injection::pod::DEFAULT_INIT_IMAGE,
            "{init}"
        );
        let deployment = find(&documents, "Deployment", "sparkstage")?;
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        ensure!(
            image
                == format!(
                    "ghcr.io/sparkstage/sparkstage-server:{}",
                    env!("CARGO_PKG_VERSION")
                ),
            "{image}"
        );
    }
    Ok(())
}

/// The ClusterRole grants exactly the calls the server's code makes.
#[test]
fn the_servers_rbac_is_exactly_what_it_calls() -> Result<()> {
    let expected: BTreeSet<(String, String, String)> = SERVER_ACCESS
        .iter()
        .map(|a| (a.group.to_owned(), a.resource.to_owned(), a.verb.to_owned()))
        .collect();
    for overlay in OVERLAYS {
        let documents = render(overlay)?;
        let role = find(&documents, "ClusterRole", "sparkstage-server")?;
        let granted = sparkstage_tests::deploy::grants(role)?;
        ensure!(
            granted == expected,
            "{overlay}: {granted:?} != {expected:?}"
        );
        let binding = find(&documents, "ClusterRoleBinding", "sparkstage-server")?;
        ensure!(binding["subjects"][0]["name"] == "sparkstage");
        // Nothing else grants anything.
        let roles = documents
            .iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
            .count();
        ensure!(roles == 1, "{overlay}: {roles} roles");
    }
    Ok(())
}

/// The SparkApplication example validates against the spark-operator's CustomResourceDefinition
/// (as the real examples of the spark-operator do), and a misspelled field would not.
#[test]
fn the_sparkapplication_example_fits_the_operators_schema() -> Result<()> {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s/spark-operator");
    let schema = sparkstage_tests::deploy::crd_schema(
        &std::fs::read_to_string(fixtures.join("sparkoperator.k8s.io_sparkapplications.yaml"))?,
        "v1beta2",
    )?;
    // The SparkApplications of a file (other kinds, such as a ConfigMap, are not the schema's).
    let read = |path: &std::path::Path| -> Result<Vec<Value>> {
        use serde::Deserialize;
        let text = std::fs::read_to_string(path)?;
        let mut found = Vec::new();
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)?;
            if value["kind"] == "SparkApplication" {
                found.push(value);
            }
        }
        Ok(found)
    };
    let mut checked = 0;
    for example in [
        "spark-pi.yaml",
        "spark-pi-python.yaml",
        "spark-pi-pod-template.yaml",
    ] {
        for document in read(&fixtures.join(example))? {
            sparkstage_tests::deploy::check_custom_resource(&schema, &document, example)?;
            checked += 1;
        }
    }
    ensure!(checked >= 3, "{checked} SparkApplications");
    let ours =
        read(&sparkstage_tests::deploy::deploy_dir().join("examples/sparkapplication.yaml"))?
            .pop()
            .context("no SparkApplication in the example")?;
    sparkstage_tests::deploy::check_custom_resource(&schema, &ours, "sparkapplication.yaml")?;
    for role in ["driver", "executor"] {
        ensure!(
            ours["spec"][role]["labels"][sparkstage_injection::webhook::INJECT_LABEL] == "true"
        );
        let sources = ours["spec"][role]["annotations"]
            [sparkstage_injection::webhook::SOURCES_ANNOTATION]
            .as_str()
            .context("sources")?;
        for (i, source) in sources.split(',').enumerate() {
            sparkstage_injection::command::Source::parse(i, source.trim())?;
        }
    }
    let mut misspelled = ours.clone();
    misspelled["spec"]["driver"]["label"] = serde_json::json!({"a": "b"});
    let error = sparkstage_tests::deploy::check_custom_resource(&schema, &misspelled, "x")
        .err()
        .context("a misspelled field passed")?;
    ensure!(
        format!("{error:#}").contains("/spec/driver") && format!("{error:#}").contains("label"),
        "the error names the place: {error:#}"
    );
    let mut wrong_type = ours;
    wrong_type["spec"]["executor"]["instances"] = Value::from("four");
    ensure!(sparkstage_tests::deploy::check_custom_resource(&schema, &wrong_type, "x").is_err());
    Ok(())
}
