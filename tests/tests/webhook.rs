//! The admission webhook against the AdmissionReview requests a real kube-apiserver (1.26) sent
//! for real Spark pods (`tests/fixtures/k8s/admission/` and `patch/`, see COPIED.md).
//!
//! Each request goes to the webhook's router through `oneshot`; the returned JSON patch is
//! applied to the request's object with a real JSON-patch implementation (which, like the API
//! server, refuses an append to a list that does not exist), the result is read as a
//! `k8s_openapi` Pod and checked, and the result is reviewed again: the second answer has no
//! patch. Where a recorded pod lacks what a case needs (our label, another annotation), the
//! test sets it on the recorded request and says so.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use clap::Parser as _;
use k8s_openapi::api::core::v1::Pod;
use object_store::ObjectStore;
use serde_json::{Value, json};
use sparkstage_api::Digest;
use sparkstage_injection::pod::{
    BUNDLE_LABEL, FILES_VOLUME, INIT_CONTAINER, JARS_VOLUME, TOKEN_VOLUME, secret_name,
};
use sparkstage_injection::{InitArgs, Injection, TokenVolume};
use sparkstage_server::metrics::AdmissionLabels;
use sparkstage_server::pod_identity::{KubeTokenReviewer, TokenReviewer};
use sparkstage_server::storage::{self, OpenOptions};
use sparkstage_server::webhook::{self, WebhookSettings};
use sparkstage_server::{AppState, Injected, Settings, app};
use sparkstage_tests::conformance::{call, post, put_blob, test_bytes};
use sparkstage_tests::kube_double::{KubeDouble, recorded_json};

const POD_SERVER_URL: &str = "http://sparkstage.sparkstage-system.svc:10000/";
const IMAGE: &str = "registry.example/sparkstage-init:test";
/// The bundle id the recorded pods carry; the tests put their own bundle's id in its place.
const RECORDED_BUNDLE: &str = "0123456789abcdef0123456789abcdef";

struct Env {
    _dir: tempfile::TempDir,
    _double: KubeDouble,
    store: Arc<dyn ObjectStore>,
    state: AppState,
    api: Router,
    webhook: Router,
    /// A bundle of namespace `fixtures`.
    bundle: String,
}

/// A server on a local store with a bundle of namespace `fixtures`; with `pod_identity`, pods'
/// tokens are reviewed by a double of the API server.
async fn env(pod_identity: bool) -> Result<Env> {
    let dir = tempfile::tempdir()?;
    let storage = storage::open(
        dir.path().to_str().context("utf-8")?,
        &OpenOptions::default(),
    )?;
    sparkstage_server::ensure_layout(storage.store.as_ref()).await?;
    let double = KubeDouble::start("15-pods-list-before-watch").await?;
    let reviewer = pod_identity
        .then(|| double.client())
        .transpose()?
        .map(|client| Arc::new(KubeTokenReviewer::new(client)) as Arc<dyn TokenReviewer>);
    let settings = Settings {
        webhook: WebhookSettings {
            init_image: IMAGE.to_owned(),
            init_pull_policy: Some("IfNotPresent".to_owned()),
            server_url: Some(POD_SERVER_URL.parse()?),
            own_namespace: Some("sparkstage-system".to_owned()),
        },
        ..Settings::default()
    };
    let state = AppState::with(
        &storage,
        settings,
        None,
        Injected {
            token_reviewer: reviewer,
            ..Injected::default()
        },
    );
    let api = app(state.clone());
    let bundle = create_bundle(&api, "fixtures").await?;
    Ok(Env {
        _dir: dir,
        _double: double,
        store: Arc::clone(&storage.store),
        webhook: webhook::router(state.clone()),
        state,
        api,
        bundle,
    })
}

/// A bundle of one jar, owned by `namespace`; its id.
async fn create_bundle(api: &Router, namespace: &str) -> Result<String> {
    let data = test_bytes(1000, 7);
    put_blob(api, &data).await?;
    let entries = json!([{"name": "app.jar", "digest": Digest::of(&data), "size": data.len(), "kind": "jar"}]);
    let (status, body) = post(
        api,
        "/v1/bundles",
        json!({"entries": entries, "owner": {"namespace": namespace}}),
    )
    .await?;
    ensure!(status == StatusCode::CREATED, "{status} {body}");
    Ok(body["id"].as_str().context("id")?.to_owned())
}

/// The review's answer (`response`).
async fn review(webhook: &Router, review: &Value) -> Result<Value> {
    let request = Request::post(webhook::ADMISSION_PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(review.to_string()))?;
    let (status, _, body) = call(webhook, request).await?;
    ensure!(status == StatusCode::OK, "{status}: {body:?}");
    let answer: Value = serde_json::from_slice(&body)?;
    ensure!(answer["apiVersion"] == "admission.k8s.io/v1", "{answer}");
    ensure!(answer["kind"] == "AdmissionReview", "{answer}");
    ensure!(
        answer["response"]["uid"] == review["request"]["uid"],
        "the answer's uid is the request's"
    );
    Ok(answer["response"].clone())
}

/// The request's object with the answer's patch applied, as the API server applies it.
fn patched(review: &Value, response: &Value) -> Result<Value> {
    let mut object = review["request"]["object"].clone();
    if let Some(patch) = response["patch"].as_str() {
        ensure!(response["patchType"] == "JSONPatch", "{response}");
        let bytes = base64::engine::general_purpose::STANDARD.decode(patch)?;
        let patch: json_patch::Patch = serde_json::from_slice(&bytes)?;
        json_patch::patch(&mut object, &patch)?;
    }
    Ok(object)
}

/// `review` with its object replaced.
fn with_object(review: &Value, object: Value) -> Value {
    let mut review = review.clone();
    review["request"]["object"] = object;
    review
}

fn set(review: &mut Value, map: &str, key: &str, value: &str) {
    let metadata = &mut review["request"]["object"]["metadata"];
    if !metadata[map].is_object() {
        metadata[map] = json!({});
    }
    metadata[map][key] = json!(value);
}

/// A recorded review asking for `bundle` (the recorded annotation's value replaced, or the
/// label and annotation added where the recorded pod has none).
fn asking(path: &str, bundle: &str) -> Result<Value> {
    let mut review = recorded_json(path)?;
    let recorded =
        &review["request"]["object"]["metadata"]["annotations"][webhook::BUNDLE_ANNOTATION];
    ensure!(
        recorded.is_null() || recorded == RECORDED_BUNDLE,
        "{recorded}"
    );
    set(&mut review, "labels", webhook::INJECT_LABEL, "true");
    set(
        &mut review,
        "annotations",
        webhook::BUNDLE_ANNOTATION,
        bundle,
    );
    Ok(review)
}

/// The pod's last init container, and its arguments as `sparkstage-init` parses them.
fn init_container(
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> Result<(&k8s_openapi::api::core::v1::Container, InitArgs)> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .last()
        .context("no init container")?;
    let argv =
        std::iter::once("sparkstage-init".to_owned()).chain(init.args.clone().unwrap_or_default());
    Ok((init, InitArgs::try_parse_from(argv)?))
}

/// What a mutated pod must hold: the pod as it was, plus exactly our parts.
fn check_injected(
    before: &Value,
    after: &Value,
    bundle: &str,
    spark: &str,
    token: &TokenVolume,
) -> Result<Pod> {
    let was: Pod = serde_json::from_value(before.clone())?;
    let pod: Pod = serde_json::from_value(after.clone())?;
    let was_spec = was.spec.clone().context("spec")?;
    let spec = pod.spec.clone().context("spec")?;
    // Everything the pod had is there, in order, ours after it.
    let init_names = |spec: &k8s_openapi::api::core::v1::PodSpec| -> Vec<String> {
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    let volume_names = |spec: &k8s_openapi::api::core::v1::PodSpec| -> Vec<String> {
        spec.volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect()
    };
    let (was_inits, inits) = (init_names(&was_spec), init_names(&spec));
    ensure!(inits[..inits.len() - 1] == was_inits[..], "{inits:?}");
    ensure!(
        inits.last().map(String::as_str) == Some(INIT_CONTAINER),
        "{inits:?}"
    );
    let (was_volumes, volumes) = (volume_names(&was_spec), volume_names(&spec));
    let ours = [JARS_VOLUME, FILES_VOLUME, TOKEN_VOLUME];
    ensure!(
        volumes[..was_volumes.len()] == was_volumes[..],
        "{volumes:?}"
    );
    ensure!(volumes[was_volumes.len()..] == ours[..], "{volumes:?}");
    // The init container is the one the templates write, for these arguments.
    let (init, args) = init_container(&spec)?;
    ensure!(args.bundle.as_deref() == Some(bundle), "{args:?}");
    ensure!(
        args.server.as_ref().map(url::Url::as_str) == Some(POD_SERVER_URL),
        "{args:?}"
    );
    let mut expected_args = InitArgs::none();
    expected_args.server = args.server.clone();
    expected_args.bundle = Some(bundle.to_owned());
    let expected = Injection {
        image: IMAGE.to_owned(),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        token: token.clone(),
        args: expected_args,
    };
    ensure!(*init == expected.init_container(), "{init:?}");
    let token_volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == TOKEN_VOLUME)
        .context("token volume")?;
    ensure!(*token_volume == expected.volumes()[2], "{token_volume:?}");
    // Spark's container mounts both directories read-only; no other container changed.
    for (i, container) in spec.containers.iter().enumerate() {
        let was = &was_spec.containers[i];
        if container.name == spark {
            let mounts = container.volume_mounts.clone().unwrap_or_default();
            let was_mounts = was.volume_mounts.clone().unwrap_or_default();
            ensure!(mounts[..was_mounts.len()] == was_mounts[..], "{mounts:?}");
            ensure!(
                mounts[was_mounts.len()..] == expected.spark_mounts()[..],
                "{mounts:?}"
            );
        } else {
            ensure!(container == was, "container {} changed", container.name);
        }
    }
    ensure!(spec.containers.len() == was_spec.containers.len());
    ensure!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(BUNDLE_LABEL))
            .map(String::as_str)
            == Some(bundle),
        "{:?}",
        pod.metadata.labels
    );
    // Nothing else in the pod changed.
    let mut rest = after.clone();
    let mut was_rest = before.clone();
    for v in [&mut rest, &mut was_rest] {
        v["spec"]["initContainers"] = Value::Null;
        v["spec"]["volumes"] = Value::Null;
        v["spec"]["containers"] = Value::Null;
        if let Some(labels) = v["metadata"]["labels"].as_object_mut() {
            labels.remove(BUNDLE_LABEL);
        }
    }
    ensure!(rest == was_rest, "the pod changed elsewhere");
    Ok(pod)
}

/// Reviews `review`, checks the injection, and reviews the result again: no second patch.
async fn mutated(env: &Env, review_json: &Value, spark: &str, token: &TokenVolume) -> Result<Pod> {
    let response = review(&env.webhook, review_json).await?;
    ensure!(response["allowed"] == true, "{response}");
    ensure!(response["patch"].is_string(), "no patch: {response}");
    let after = patched(review_json, &response)?;
    let pod = check_injected(
        &review_json["request"]["object"],
        &after,
        &env.bundle,
        spark,
        token,
    )?;
    let again = review(&env.webhook, &with_object(review_json, after)).await?;
    ensure!(
        again["allowed"] == true && again.get("patch").is_none(),
        "second review: {again}"
    );
    Ok(pod)
}

fn count(state: &AppState, result: &'static str) -> u64 {
    state
        .metrics
        .admission_reviews
        .get_or_create(&AdmissionLabels { result })
        .get()
}

#[tokio::test]
async fn recorded_spark_pods_get_the_init_container_once() -> Result<()> {
    let env = env(false).await?;
    let secret = TokenVolume::Secret {
        name: secret_name(&env.bundle),
    };
    // Driver pods of real spark-submit in cluster mode: with a user's template (its init
    // container, volume and label are kept), without one (no initContainers list at all: the
    // patch adds the list, an append would be refused), and the recorder's own patched run.
    for (path, spark) in [
        (
            "admission/spark-driver-template.review.json",
            "spark-kubernetes-driver",
        ),
        (
            "admission/spark-driver-plain.review.json",
            "spark-kubernetes-driver",
        ),
        (
            "patch/spark-driver-template-patched.review.json",
            "spark-kubernetes-driver",
        ),
        (
            "patch/spark-driver-no-init.attempt-1.review.json",
            "spark-kubernetes-driver",
        ),
        (
            "admission/spark-executor-1.review.json",
            "spark-kubernetes-executor",
        ),
        (
            "admission/spark-executor-2.review.json",
            "spark-kubernetes-executor",
        ),
        (
            "admission/spark-executor-owned-1.review.json",
            "spark-kubernetes-executor",
        ),
        ("patch/inject-no-init.review.json", "main"),
        // Not a Spark pod: its first container.
        ("admission/kubectl-run.review.json", "plain-kubectl"),
    ] {
        let review_json = asking(path, &env.bundle)?;
        mutated(&env, &review_json, spark, &secret)
            .await
            .with_context(|| path.to_owned())?;
    }
    assert_eq!(count(&env.state, "mutated"), 9);
    // A template that injected already, as the submit hook's templates do: left alone.
    let mut review_json = asking("admission/spark-driver-template.review.json", &env.bundle)?;
    let response = review(&env.webhook, &review_json).await?;
    let injected = patched(&review_json, &response)?;
    review_json["request"]["object"] = injected;
    review_json["request"]["uid"] = json!("retry-uid");
    let again = review(&env.webhook, &review_json).await?;
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none());
    Ok(())
}

#[tokio::test]
async fn pods_that_do_not_ask_and_protected_namespaces_are_left_alone() -> Result<()> {
    let env = env(false).await?;
    // As recorded: no label.
    for path in [
        "admission/spark-driver-plain.review.json",
        "admission/kubectl-run.review.json",
        "admission/kube-system-generatename.review.json",
        "admission/dry-run.review.json",
    ] {
        let review_json = recorded_json(path)?;
        let response = review(&env.webhook, &review_json).await?;
        assert_eq!(response["allowed"], true, "{path}");
        assert!(response.get("patch").is_none(), "{path}");
    }
    // Asking, but in kube-system (the generateName pod: no name in the request) or in the
    // server's own namespace.
    let kube_system = asking(
        "admission/kube-system-generatename.review.json",
        &env.bundle,
    )?;
    assert!(kube_system["request"].get("name").is_none());
    let mut own = asking("admission/kubectl-run.review.json", &env.bundle)?;
    own["request"]["namespace"] = json!("sparkstage-system");
    own["request"]["object"]["metadata"]["namespace"] = json!("sparkstage-system");
    for review_json in [kube_system, own] {
        let response = review(&env.webhook, &review_json).await?;
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
    }
    assert_eq!(count(&env.state, "unchanged"), 6);
    assert_eq!(count(&env.state, "mutated"), 0);
    Ok(())
}

/// Every object in the store (name and size).
async fn listing(store: &Arc<dyn ObjectStore>) -> Result<BTreeSet<(String, u64)>> {
    use futures::TryStreamExt;
    let all: Vec<_> = store.list(None).try_collect().await?;
    Ok(all
        .into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect())
}

#[tokio::test]
async fn a_dry_run_gets_the_same_answer_and_changes_nothing() -> Result<()> {
    let env = env(false).await?;
    let dry = asking("admission/dry-run.review.json", &env.bundle)?;
    assert_eq!(dry["request"]["dryRun"], true);
    let before = listing(&env.store).await?;
    let response = review(&env.webhook, &dry).await?;
    let mut wet = dry.clone();
    wet["request"]["dryRun"] = json!(false);
    let wet_response = review(&env.webhook, &wet).await?;
    assert_eq!(response["patch"], wet_response["patch"]);
    assert!(response["patch"].is_string());
    assert_eq!(
        listing(&env.store).await?,
        before,
        "the review wrote nothing"
    );
    Ok(())
}

#[tokio::test]
async fn mistakes_are_denied_with_what_to_fix() -> Result<()> {
    let env = env(false).await?;
    let other_namespace = create_bundle(&env.api, "elsewhere").await?;
    let base = "admission/spark-executor-1.review.json";
    let unknown = "f".repeat(32);
    let mut cases: Vec<(Value, &str)> = vec![
        (asking(base, "not-a-bundle")?, "is not a bundle id"),
        (asking(base, &unknown)?, "does not exist"),
        (
            asking(base, &other_namespace)?,
            "belongs to namespace elsewhere",
        ),
    ];
    let mut nothing = recorded_json(base)?;
    nothing["request"]["object"]["metadata"]["annotations"] = json!({});
    cases.push((nothing, "says nothing to fetch"));
    for (annotation, value, says) in [
        (
            webhook::SOURCES_ANNOTATION,
            "https://repo.example/a.jar, ftp://h/b.jar",
            "unknown scheme \"ftp\"",
        ),
        (
            webhook::SOURCES_ANNOTATION,
            "https://repo.example/a.jar#sha256=00",
            "bad #sha256= fragment",
        ),
        (
            webhook::JARS_DIR_ANNOTATION,
            "jars",
            "sparkstage.io/jars-dir",
        ),
        (
            webhook::FILES_DIR_ANNOTATION,
            "/var/spark-data/spark-jars/",
            "the same directory",
        ),
        (
            webhook::CONTAINER_ANNOTATION,
            "spark",
            "no container named \"spark\"",
        ),
    ] {
        let mut review_json = asking(base, &env.bundle)?;
        set(&mut review_json, "annotations", annotation, value);
        cases.push((review_json, says));
    }
    // A user mount at our jars directory in Spark's container.
    let mut clash = asking(base, &env.bundle)?;
    clash["request"]["object"]["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .context("mounts")?
        .push(json!({"name": "spark-local-dir-1", "mountPath": "/var/spark-data/spark-jars"}));
    cases.push((
        clash,
        "already mounts volume \"spark-local-dir-1\" at /var/spark-data/spark-jars",
    ));
    // A volume of the user's with one of our names.
    let mut name = asking(base, &env.bundle)?;
    name["request"]["object"]["spec"]["volumes"]
        .as_array_mut()
        .context("volumes")?
        .push(json!({"name": "sparkstage-jars", "emptyDir": {}}));
    cases.push((name, "named \"sparkstage-jars\""));
    let total = cases.len() as u64;
    for (review_json, says) in cases {
        let response = review(&env.webhook, &review_json).await?;
        let message = response["status"]["message"].as_str().unwrap_or_default();
        assert_eq!(response["allowed"], false, "{says}: {response}");
        assert!(message.starts_with("sparkstage: "), "{message}");
        assert!(message.contains(says), "{says:?} not in {message:?}");
        assert_eq!(response["status"]["code"], 403);
        assert!(response.get("patch").is_none());
    }
    assert_eq!(count(&env.state, "denied"), total);
    Ok(())
}

#[tokio::test]
async fn sources_alone_need_no_bundle_and_no_token_and_directories_move() -> Result<()> {
    let env = env(true).await?;
    let mut review_json = recorded_json("admission/spark-executor-1.review.json")?;
    let object = &mut review_json["request"]["object"]["metadata"];
    object["annotations"] = json!({
        "sparkstage.io/sources": format!("https://repo.example/lib/udf.jar#sha256={}, s3://team/data/lookup.csv", "ab".repeat(32)),
        "sparkstage.io/jars-dir": "/opt/deps/jars",
        "sparkstage.io/files-dir": "/opt/deps/files",
    });
    let response = review(&env.webhook, &review_json).await?;
    assert_eq!(response["allowed"], true, "{response}");
    let pod: Pod = serde_json::from_value(patched(&review_json, &response)?)?;
    let spec = pod.spec.context("spec")?;
    let (_, args) = init_container(&spec)?;
    assert_eq!(args.bundle, None);
    assert_eq!(args.server, None);
    assert_eq!(args.token_file, None);
    assert_eq!(args.sources.len(), 2);
    assert_eq!(
        args.jars_dir.as_deref(),
        Some(std::path::Path::new("/opt/deps/jars"))
    );
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .all(|v| v.name != TOKEN_VOLUME)
    );
    let mounts: Vec<_> = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), m.read_only))
        .collect();
    assert!(
        mounts.contains(&("/opt/deps/jars", Some(true))),
        "{mounts:?}"
    );
    assert!(
        mounts.contains(&("/opt/deps/files", Some(true))),
        "{mounts:?}"
    );
    assert!(
        !pod.metadata
            .labels
            .unwrap_or_default()
            .contains_key(BUNDLE_LABEL),
        "no bundle, no bundle label"
    );
    Ok(())
}

#[tokio::test]
async fn with_pod_identity_the_token_is_projected_for_sparkstage() -> Result<()> {
    let env = env(true).await?;
    // A bundle of no namespace cannot be opened by a pod's token: denied at once.
    let data = test_bytes(10, 3);
    put_blob(&env.api, &data).await?;
    let entries =
        json!([{"name": "x.jar", "digest": Digest::of(&data), "size": data.len(), "kind": "jar"}]);
    let (_, created) = post(&env.api, "/v1/bundles", json!({ "entries": entries })).await?;
    let nowhere = created["id"].as_str().context("id")?;
    let response = review(
        &env.webhook,
        &asking("admission/spark-executor-1.review.json", nowhere)?,
    )
    .await?;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--namespace fixtures"), "{message}");
    let review_json = asking("admission/spark-driver-template.review.json", &env.bundle)?;
    let pod = mutated(
        &env,
        &review_json,
        "spark-kubernetes-driver",
        &TokenVolume::ServiceAccount,
    )
    .await?;
    let volumes = pod.spec.context("spec")?.volumes.unwrap_or_default();
    let token = volumes
        .iter()
        .find(|v| v.name == TOKEN_VOLUME)
        .context("token")?;
    let projection = token.projected.as_ref().context("projected")?;
    let sources = projection.sources.as_ref().context("sources")?;
    let sa = sources[0]
        .service_account_token
        .as_ref()
        .context("service account token")?;
    assert_eq!(sa.audience.as_deref(), Some("sparkstage"));
    assert_eq!(sa.expiration_seconds, Some(600));
    Ok(())
}

#[tokio::test]
async fn the_webhook_is_not_on_the_api_and_the_api_is_not_on_the_webhook() -> Result<()> {
    let env = env(false).await?;
    let review_json = asking("admission/spark-executor-1.review.json", &env.bundle)?;
    let request = Request::post(webhook::ADMISSION_PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(review_json.to_string()))?;
    let (status, _, _) = call(&env.api, request).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &env.webhook,
        Request::get("/v1/bundles").body(Body::empty())?,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &env.webhook,
        Request::post(webhook::ADMISSION_PATH).body(Body::from("{not json"))?,
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Another kind (a rule wider than pods) is allowed unchanged; a pod that is not one is
    // denied, saying why.
    let mut deployment = review_json.clone();
    deployment["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    deployment["request"]["object"]["spec"] = json!({"replicas": "three"});
    let response = review(&env.webhook, &deployment).await?;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let mut broken = review_json;
    broken["request"]["object"]["spec"]["containers"] = json!("not a list");
    let response = review(&env.webhook, &broken).await?;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot read the pod"), "{message}");
    Ok(())
}
