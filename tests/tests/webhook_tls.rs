//! The webhook end to end, as a cluster runs it: the real server process with `--kubernetes`
//! (its API server is a double that serves recorded traffic, TokenReviews included) and
//! `--webhook-listen` over real TLS, a client that trusts only the test CA, the recorded
//! AdmissionReview of a real Spark driver pod, and the real `sparkstage-init` run with exactly
//! the injected container's arguments, its volumes mounted as the kubelet would (each mount
//! path mapped to a directory of the test, the projected token written where the kubelet writes
//! it). Then the certificate is replaced on disk and served on the next connection.

use std::path::{Path, PathBuf};
use tokio::process::Command;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_injection::pod::{INIT_CONTAINER, TOKEN_KEY};
use sparkstage_tests::conformance::test_bytes;
use sparkstage_tests::kube_double::{KubeDouble, recorded_json};
use sparkstage_tests::server::{Server, binary};

/// A token shaped like a ServiceAccount token (the recorded ones were redacted); the double
/// answers its review with the recorded review of a driver pod's token (`fixtures:default`).
const POD_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Zml4dHVyZXM6ZGVmYXVsdCJ9.c2lnbmF0dXJl";
/// Another; the double answers it with the recorded invalid-signature review.
const FORGED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.Zm9yZ2Vk";

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sparkstage-test-ca");
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A server certificate for 127.0.0.1 signed by `ca`: (certificate PEM, key PEM, DER).
fn leaf(ca: &Ca, name: &str) -> Result<(String, String, Vec<u8>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
}

/// Writes `text` to `path` as the kubelet updates a mounted Secret: a whole new file renamed
/// over the old one.
fn replace(path: &Path, text: &str) -> Result<()> {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// A client that trusts only `ca`, on a fresh connection.
fn client(ca: &Ca) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes())?])
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()?)
}

/// Posts `review`; the answer's `response` and the certificate the server showed.
async fn post_review(ca: &Ca, port: u16, review: &Value) -> Result<(Value, Vec<u8>)> {
    let answer = client(ca)?
        .post(format!("https://127.0.0.1:{port}/v1/admission/pods"))
        .json(review)
        .send()
        .await?;
    let shown = answer
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .context("no peer certificate")?
        .to_vec();
    let answer = answer.error_for_status()?;
    let body: Value = answer.json().await?;
    Ok((body["response"].clone(), shown))
}

/// Runs the pod's init container here, as the kubelet would: every mount of it becomes a
/// directory under `root`, the projected ServiceAccount token is written into its volume, and
/// arguments that name a path under a mount name the directory instead. The directory of each
/// volume, by name.
async fn run_init_container(
    pod: &Pod,
    root: &Path,
) -> Result<(std::process::Output, Vec<(String, PathBuf)>)> {
    let spec = pod.spec.as_ref().context("spec")?;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == INIT_CONTAINER)
        .context("no init container")?;
    let mut mounts = Vec::new();
    for mount in init.volume_mounts.iter().flatten() {
        let host = root.join(&mount.name);
        std::fs::create_dir_all(&host)?;
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .context("a mount of no volume")?;
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(token) = &source.service_account_token {
                    ensure!(token.audience.as_deref() == Some("sparkstage"));
                    std::fs::write(host.join(&token.path), POD_TOKEN)?;
                }
            }
        }
        mounts.push((mount.mount_path.clone(), host));
    }
    let args: Vec<String> = init
        .args
        .iter()
        .flatten()
        .map(|arg| {
            for (path, host) in &mounts {
                if let Some(rest) = arg.strip_prefix(path.as_str())
                    && (rest.is_empty() || rest.starts_with('/'))
                {
                    return format!("{}{rest}", host.display());
                }
            }
            arg.clone()
        })
        .collect();
    // Asynchronously: the API server double answers the server's TokenReview on this runtime.
    let output = Command::new(binary("sparkstage-init")?)
        .args(&args)
        .env_clear()
        .kill_on_drop(true)
        .output()
        .await?;
    let volumes = init
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), root.join(&m.name)))
        .collect();
    Ok((output, volumes))
}

#[tokio::test]
async fn a_recorded_driver_pod_fetches_its_bundle_with_its_own_token_over_the_webhook() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let double = KubeDouble::start("15-pods-list-before-watch").await?;
    double.review_token(POD_TOKEN, "22-tokenreview-pod-bound")?;
    let kubeconfig = double.kubeconfig(dir.path())?;
    let ca = ca()?;
    let (cert_pem, key_pem, first_der) = leaf(&ca, "first")?;
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, cert_pem)?;
    std::fs::write(&key, key_pem)?;
    let storage = dir.path().join("store");
    let server = Server::start(
        &[
            "--storage",
            storage.to_str().context("utf-8")?,
            "--kubernetes",
            "--webhook-listen",
            "127.0.0.1:{port2}",
            "--webhook-cert",
            cert.to_str().context("utf-8")?,
            "--webhook-key",
            key.to_str().context("utf-8")?,
            "--pod-server-url",
            "http://127.0.0.1:{port}",
            "--namespace",
            "sparkstage-system",
        ],
        &[("KUBECONFIG".to_owned(), kubeconfig.display().to_string())],
    )
    .await?;

    // Stage a bundle for namespace `fixtures`, as `sparkstage upload` would.
    let http = reqwest::Client::new();
    let jar = test_bytes(300_000, 1);
    let csv = b"id,name\n1,a\n".to_vec();
    let mut entries = Vec::new();
    for (name, kind, data) in [("udf.jar", "jar", &jar), ("lookup.csv", "file", &csv)] {
        http.put(format!("{}/v1/blobs/{}", server.url(), Digest::of(data)))
            .body(data.clone())
            .send()
            .await?
            .error_for_status()?;
        entries.push(
            json!({"name": name, "kind": kind, "digest": Digest::of(data), "size": data.len()}),
        );
    }
    let created: Value = http
        .post(format!("{}/v1/bundles", server.url()))
        .json(&json!({"entries": entries, "owner": {"namespace": "fixtures"}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bundle = created["id"].as_str().context("id")?.to_owned();
    let bundle_token = created["token"].as_str().context("token")?.to_owned();

    // The recorded review of a real driver pod (spark-submit with a template), asking for it.
    let mut review = recorded_json("admission/spark-driver-template.review.json")?;
    review["request"]["object"]["metadata"]["annotations"]["sparkstage.io/bundle"] = json!(bundle);
    let (response, shown) = post_review(&ca, server.port2, &review).await?;
    assert_eq!(shown, first_der, "the webhook shows its certificate");
    assert_eq!(response["allowed"], true, "{response}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().context("no patch")?)?;
    let patch: json_patch::Patch = serde_json::from_slice(&patch)?;
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch)?;
    let pod: Pod = serde_json::from_value(object)?;

    let (output, volumes) = run_init_container(&pod, &dir.path().join("kubelet")).await?;
    ensure!(
        output.status.success(),
        "sparkstage-init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|(v, _)| v == name)
            .map(|(_, p)| p.clone())
            .context("volume")
    };
    assert_eq!(
        std::fs::read(volume("sparkstage-jars")?.join("udf.jar"))?,
        jar
    );
    assert_eq!(
        std::fs::read(volume("sparkstage-files")?.join("lookup.csv"))?,
        csv
    );
    assert!(volume("sparkstage-token")?.join(TOKEN_KEY).exists());
    // One TokenReview, for our audience, for the manifest and both blobs.
    let (reviews, audiences) = double.token_reviews();
    assert_eq!(reviews, 1);
    assert_eq!(audiences, Some(vec!["sparkstage".to_owned()]));

    // A forged token, or none that fits, looks exactly like an unknown bundle; the bundle token
    // still opens it.
    let manifest = |token: &str, id: &str| {
        http.get(format!("{}/v1/bundles/{id}", server.url()))
            .bearer_auth(token)
            .send()
    };
    let forged = manifest(FORGED_TOKEN, &bundle).await?;
    let forged_status = forged.status();
    let forged_body: Value = forged.json().await?;
    let unknown = manifest(&bundle_token, &"e".repeat(32)).await?;
    assert_eq!(forged_status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(forged_body, unknown.json::<Value>().await?);
    assert_eq!(manifest(&bundle_token, &bundle).await?.status(), 200);
    // The pod's token opens only bundles of its namespace.
    let elsewhere: Value = http
        .post(format!("{}/v1/bundles", server.url()))
        .json(&json!({"entries": [entries[1]], "owner": {"namespace": "elsewhere"}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let other = elsewhere["id"].as_str().context("id")?;
    assert_eq!(manifest(POD_TOKEN, other).await?.status(), 404);
    assert_eq!(manifest(POD_TOKEN, &bundle).await?.status(), 200);

    // A bundle whose source is still being fetched opens with the pod's token too, once
    // complete; one of another namespace does not, pending or not.
    let origin_root = tempfile::tempdir()?;
    std::fs::write(origin_root.path().join("remote.jar"), b"remote bytes")?;
    let origin = sparkstage_tests::maven_repo::MavenRepo::serve(
        origin_root.path(),
        std::time::Duration::from_millis(800),
    )
    .await?;
    let pending = |namespace: &str| {
        let body = json!({
            "entries": [],
            "sources": [{"kind": "jar", "source": format!("{}remote.jar", origin.url)}],
            "owner": {"namespace": namespace},
        });
        let request = http
            .post(format!("{}/v1/bundles", server.url()))
            .json(&body);
        async move {
            let answer = request.send().await?;
            ensure!(answer.status() == 202, "{}", answer.status());
            anyhow::Ok(
                answer.json::<Value>().await?["id"]
                    .as_str()
                    .context("id")?
                    .to_owned(),
            )
        }
    };
    let (mine, theirs) = (pending("fixtures").await?, pending("elsewhere").await?);
    assert_eq!(manifest(POD_TOKEN, &theirs).await?.status(), 404);
    let completed = manifest(POD_TOKEN, &mine).await?;
    assert_eq!(completed.status(), 200);
    let completed: Value = completed.json().await?;
    assert_eq!(completed["entries"][0]["name"], "remote.jar", "{completed}");
    assert_eq!(manifest(POD_TOKEN, &theirs).await?.status(), 404);

    // A new certificate on disk is served on the next connection.
    let (cert_pem, key_pem, second_der) = leaf(&ca, "second")?;
    replace(&key, &key_pem)?;
    replace(&cert, &cert_pem)?;
    let (again, shown) = post_review(&ca, server.port2, &review).await?;
    assert_eq!(shown, second_der, "the replaced certificate is served");
    assert_eq!(again["patch"], response["patch"]);
    // A half-written pair (a key that does not go with the certificate) is not taken: the
    // last good one serves meanwhile.
    let (_, other_key, _) = leaf(&ca, "third")?;
    replace(&key, &other_key)?;
    let (_, shown) = post_review(&ca, server.port2, &review).await?;
    assert_eq!(shown, second_der);
    // The staging API is not on the webhook's port, and the webhook not on the API's.
    let api_on_webhook = client(&ca)?
        .get(format!("https://127.0.0.1:{}/v1/bundles", server.port2))
        .send()
        .await?;
    assert_eq!(api_on_webhook.status(), 404);
    let webhook_on_api = http
        .post(format!("{}/v1/admission/pods", server.url()))
        .json(&review)
        .send()
        .await?;
    assert_eq!(webhook_on_api.status(), 404);
    Ok(())
}
