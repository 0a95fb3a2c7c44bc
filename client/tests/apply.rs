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

/// `sparkstage apply --dry-run -f ARGS...` in `work` against `server`: its output, and the
/// documents in it.
/// The kinds of `documents`, in order.
fn kinds(documents: &[Value]) -> Vec<&str> {
    documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect()
}

async fn dry_run(
    work: &std::path::Path,
    args: &[&str],
    server: &Server,
) -> Result<(String, Vec<Value>)> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
        .args(["apply", "--dry-run", "--server", &server.url(), "-f"])
        .args(args)
        .current_dir(work)
        .env("SPARKSTAGE_DIGEST_CACHE", work.join("digests.json"))
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "{stderr}");
    let text = String::from_utf8(output.stdout)?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        documents.push(Value::deserialize(document)?);
    }
    Ok((text, documents))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_documents_fit_the_operators_schema() -> Result<()> {
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.jar"), "jar")?;
    std::fs::write(work.path().join("lookup.csv"), "a,b\n")?;
    std::fs::write(
        work.path().join("app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\ndata: {a: b} # as written\n---\n\
         apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n\
         metadata: {name: nightly, namespace: analytics}\nspec:\n  type: Scala\n  mode: cluster\n  \
         image: apache/spark:4.0.0\n  sparkVersion: 4.0.0\n  mainClass: com.example.Nightly\n  \
         mainApplicationFile: app.jar\n  deps:\n    files: [lookup.csv]\n  driver: {cores: 1}\n  \
         executor: {instances: 2}\n---\n\
         apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n\
         metadata: {name: remote-only}\nspec:\n  type: Scala\n  mode: cluster\n  \
         sparkVersion: 4.0.0\n  mainApplicationFile: \"s3a://jobs/app.jar\"\n  \
         sparkConf: {spark.files: \"https://repo.example/x.txt\"}\n",
    )?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let schema = schema()?;
    for inject in ["webhook", "spec"] {
        let (text, documents) = dry_run(
            work.path(),
            &[
                "app.yaml",
                "--inject",
                inject,
                "--fetch-remote",
                "--remote",
                "pod",
            ],
            &server,
        )
        .await?;
        let kinds = kinds(&documents);
        ensure!(
            kinds
                == [
                    "Secret",
                    "ConfigMap",
                    "SparkApplication",
                    "SparkApplication"
                ],
            "{kinds:?}"
        );
        ensure!(documents[1]["data"]["a"] == "b", "other kinds pass through");
        ensure!(
            text.contains("metadata: {name: kept}\ndata: {a: b} # as written\n"),
            "as they were written: {text}"
        );
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
        // With --fetch-remote and only remote files: the init container fetches them, no
        // bundle, no token, no Secret.
        let remote = &documents[3];
        sparkstage_tests::deploy::check_custom_resource(&schema, remote, "remote-only")?;
        // The primary resource is Spark's to fetch, as with `sparkstage submit --fetch-remote`.
        ensure!(
            remote["spec"]["mainApplicationFile"] == "s3a://jobs/app.jar"
                && remote["spec"]["sparkConf"]["spark.files"]
                    == "local:///var/spark-data/spark-files/x.txt",
            "{remote}"
        );
        let text = remote.to_string();
        ensure!(
            text.contains("https://repo.example/x.txt")
                && !text.contains("sparkstage.io/bundle")
                && !text.contains("sparkstage-token"),
            "{inject}: {remote}"
        );
    }
    // The server fetches the remote files when it can (the default): the remote-only
    // application gets a bundle of one source entry, its Secret, and no sources for the pods.
    let (_, documents) = dry_run(work.path(), &["app.yaml", "--fetch-remote"], &server).await?;
    let kinds = kinds(&documents);
    ensure!(
        kinds
            == [
                "Secret",
                "Secret",
                "ConfigMap",
                "SparkApplication",
                "SparkApplication"
            ],
        "{kinds:?}"
    );
    let remote = &documents[4];
    let annotations = &remote["spec"]["executor"]["annotations"];
    ensure!(
        annotations["sparkstage.io/bundle"].is_string()
            && annotations.get("sparkstage.io/sources").is_none(),
        "{remote}"
    );
    Ok(())
}

/// `sparkstage apply` (not a dry run) through `kube`'s real client against the API double: the
/// token Secret is created, every document is applied with server-side apply as field manager
/// `sparkstage` (a ConfigMap found by discovery, the SparkApplication without), then the
/// SparkApplication the API server answered becomes the Secret's owner; the bundle is owned by
/// the application's pods (namespace from the kubeconfig, the operator's app-name label).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_through_the_kubernetes_api() -> Result<()> {
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.jar"), "jar")?;
    std::fs::write(
        work.path().join("app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\ndata: {a: b}\n---\n\
         apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n\
         metadata: {name: nightly}\nspec:\n  type: Scala\n  mode: cluster\n  \
         image: apache/spark:4.0.0\n  sparkVersion: 4.0.0\n  mainClass: com.example.Nightly\n  \
         mainApplicationFile: app.jar\n  driver: {cores: 1}\n  executor: {instances: 2}\n",
    )?;
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let double = sparkstage_tests::kube_double::KubeDouble::start("14-pods-list-none").await?;
    let kubeconfig = double.kubeconfig(work.path())?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage"))
        .args(["apply", "-f", "app.yaml", "--server", &server.url()])
        .current_dir(work.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("SPARKSTAGE_DIGEST_CACHE", work.path().join("digests.json"))
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8(output.stdout)?;
    ensure!(
        stdout.lines().collect::<Vec<_>>()
            == [
                "configmap/kept serverside-applied",
                "sparkapplication.sparkoperator.k8s.io/nightly serverside-applied"
            ],
        "{stdout}"
    );

    let writes = double.writes();
    let calls: Vec<(&str, &str)> = writes
        .iter()
        .map(|w| {
            (
                w.method.as_str(),
                w.uri.split('?').next().unwrap_or_default(),
            )
        })
        .collect();
    let secret = writes
        .iter()
        .find(|w| w.method == "POST")
        .context("no Secret created")?;
    let secret_name = secret.body["metadata"]["name"].as_str().context("name")?;
    ensure!(
        calls
            == [
                ("PATCH", "/api/v1/namespaces/fixtures/configmaps/kept"),
                ("POST", "/api/v1/namespaces/fixtures/secrets"),
                (
                    "PATCH",
                    "/apis/sparkoperator.k8s.io/v1beta2/namespaces/fixtures/sparkapplications/nightly"
                ),
                (
                    "PATCH",
                    &format!("/api/v1/namespaces/fixtures/secrets/{secret_name}") as &str
                ),
            ],
        "{calls:?}"
    );
    for applied in [&writes[0], &writes[2]] {
        ensure!(
            applied.content_type == "application/apply-patch+yaml"
                && applied.uri.contains("fieldManager=sparkstage")
                && !applied.uri.contains("force=true"),
            "{applied:?}"
        );
    }
    ensure!(writes[0].body["data"]["a"] == "b", "{:?}", writes[0]);
    let app = &writes[2].body;
    sparkstage_tests::deploy::check_custom_resource(&schema()?, app, "applied")?;
    ensure!(
        app["spec"]["mainApplicationFile"] == "local:///var/spark-data/spark-jars/app.jar",
        "{app}"
    );
    // The Secret belongs to the SparkApplication as the API server answered it (its uid).
    let owner = &writes[3].body["metadata"]["ownerReferences"][0];
    ensure!(
        writes[3].content_type == "application/merge-patch+json"
            && owner["kind"] == "SparkApplication"
            && owner["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
            && owner["name"] == "nightly"
            && owner["uid"]
                == sparkstage_tests::kube_double::applied_uid(
                    "/apis/sparkoperator.k8s.io/v1beta2/namespaces/fixtures/sparkapplications/nightly"
                ),
        "{:?}",
        writes[3]
    );
    // The bundle: owned by the application's pods, opened by the Secret's token.
    let bundle = app["spec"]["driver"]["annotations"]["sparkstage.io/bundle"]
        .as_str()
        .context("no bundle annotation")?;
    ensure!(
        secret_name == format!("sparkstage-{bundle}"),
        "{secret_name}"
    );
    let token = secret.body["data"]["token"].as_str().context("token")?;
    use base64::Engine as _;
    let token = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(token)?)?;
    let manifest = server.manifest(bundle, &token).await?;
    ensure!(
        manifest["owner"]["namespace"] == "fixtures"
            && manifest["owner"]["labels"]["sparkoperator.k8s.io/app-name"] == "nightly",
        "{manifest}"
    );
    Ok(())
}

/// What the spark-operator's pod webhook does with `spec.{role}.volumes`/`volumeMounts`/
/// `initContainers` (kubeflow/spark-operator `internal/webhook/sparkpod_defaulter.go`:
/// `addVolumes`, `addInitContainers`): a volume of `spec.volumes` is added only when the role's
/// `volumeMounts` name it, with the mount in Spark's container; init containers are appended.
fn operator_mutation(pod: &mut Value, role: &Value, volumes: &Value) {
    let mut added = std::collections::BTreeSet::new();
    for mount in role["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let Some(volume) = volumes
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
        else {
            continue;
        };
        if added.insert(name.to_owned())
            && let Some(list) = pod["spec"]["volumes"].as_array_mut()
        {
            list.push(volume.clone());
        }
        if let Some(list) = pod["spec"]["containers"][0]["volumeMounts"].as_array_mut() {
            list.push(mount.clone());
        }
    }
    for init in role["initContainers"].as_array().into_iter().flatten() {
        if !pod["spec"]["initContainers"].is_array() {
            pod["spec"]["initContainers"] = serde_json::json!([]);
        }
        if let Some(list) = pod["spec"]["initContainers"].as_array_mut() {
            list.push(init.clone());
        }
    }
}

/// Every mount of every container names a volume of the pod (the API server refuses the pod
/// otherwise).
fn mounts_have_volumes(pod: &k8s_openapi::api::core::v1::Pod) -> Result<()> {
    let spec = pod.spec.as_ref().context("spec")?;
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for mount in container.volume_mounts.iter().flatten() {
            ensure!(
                volumes.contains(&mount.name.as_str()),
                "{}: mount {} has no volume in {volumes:?}",
                container.name,
                mount.name
            );
        }
    }
    Ok(())
}

/// A one-artifact Maven repository: `t:x:1.0`.
fn repository(root: &std::path::Path) -> Result<Vec<u8>> {
    let dir = root.join("t/x/1.0");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("x-1.0.pom"),
        "<project><modelVersion>4.0.0</modelVersion><groupId>t</groupId>\
         <artifactId>x</artifactId><version>1.0</version></project>",
    )?;
    let jar = b"the jar of t:x:1.0".to_vec();
    std::fs::write(dir.join("x-1.0.jar"), &jar)?;
    Ok(jar)
}

/// End to end as the operator's pods run it, for both ways of adding the init container:
/// `sparkstage apply --dry-run` against the real server stages the job's jar and data file and
/// resolves its package; the recorded driver and executor pods of a real spark-submit get what
/// the operator's webhook (`--inject spec`) or sparkstage's (`--inject webhook`) adds; the init
/// container runs with exactly those arguments; then the rewritten application runs as the
/// operator submits it (main class, `spec.deps.jars`, `spec.deps.files`, arguments) with the
/// real `spark-submit --master local[2]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_pods_fetch_what_apply_staged_and_spark_runs_the_job() -> Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    use sparkstage_injection::{Injection, Role, TokenVolume, webhook};
    use sparkstage_tests::spark::{
        MAIN_CLASS, build_job_jar, data_file, run_spark, spark_command, spark_jars, spark_submit,
    };
    const ROOT: &str = "/var/spark-data";
    const POD_SERVER_URL: &str = "http://sparkstage.sparkstage-system.svc:10000/";
    let spark = spark_submit()?;
    let work = tempfile::Builder::new()
        .prefix("sparkstage-apply-")
        .tempdir()?;
    let app_dir = work.path().join("app");
    std::fs::create_dir_all(&app_dir)?;
    let jar = build_job_jar(&work.path().join("build"), &spark_jars(&spark)?)?;
    std::fs::write(app_dir.join("wordcount.jar"), &jar)?;
    let (data, lines, words) = data_file();
    std::fs::write(app_dir.join("words.txt"), &data)?;
    let repo_root = work.path().join("repo");
    let package_jar = repository(&repo_root)?;
    let repo =
        sparkstage_tests::maven_repo::MavenRepo::serve(&repo_root, Default::default()).await?;
    std::fs::write(
        app_dir.join("wordcount.yaml"),
        format!(
            "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n\
             metadata: {{name: wordcount, namespace: analytics}}\nspec:\n  type: Java\n  \
             mode: cluster\n  image: apache/spark:4.0.0\n  sparkVersion: 4.0.0\n  \
             mainClass: {MAIN_CLASS}\n  mainApplicationFile: wordcount.jar\n  \
             arguments: [{ROOT}/spark-files/words.txt]\n  deps:\n    files: [words.txt]\n    \
             packages: [\"t:x:1.0\"]\n    repositories: [\"{}\"]\n  \
             driver: {{cores: 1, labels: {{team: data}}}}\n  executor: {{instances: 1}}\n",
            repo.url
        ),
    )?;
    // The resolver's cache in the test's directory, not in the working tree.
    let cache = work.path().join("maven-cache");
    let server = Server::start(
        &[
            "--storage",
            "memory://",
            "--maven-cache",
            &cache.display().to_string(),
        ],
        &[],
    )
    .await?;
    let schema = schema()?;
    for inject in ["spec", "webhook"] {
        let (_, documents) = dry_run(
            work.path(),
            &[
                "app/wordcount.yaml",
                "--inject",
                inject,
                "--internal-server",
                POD_SERVER_URL,
            ],
            &server,
        )
        .await?;
        let [secret, app] = &documents[..] else {
            anyhow::bail!("{inject}: not a Secret and a SparkApplication: {documents:?}");
        };
        sparkstage_tests::deploy::check_custom_resource(&schema, app, inject)?;
        let spec = &app["spec"];
        // Neither the operator nor the driver runs Ivy: the package is a staged jar.
        ensure!(
            spec["deps"].get("packages").is_none() && spec["deps"].get("repositories").is_none(),
            "{spec}"
        );
        let jars: Vec<&str> = spec["deps"]["jars"]
            .as_array()
            .context("no spec.deps.jars")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let [package] = jars[..] else {
            anyhow::bail!("{jars:?}");
        };
        ensure!(
            package.starts_with(&format!("local://{ROOT}/spark-jars/"))
                && package.ends_with("x-1.0.jar"),
            "{package}"
        );
        ensure!(spec["driver"]["labels"]["team"] == "data", "kept: {spec}");
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["token"].as_str().context("no token")?)?;

        for (role, recorded) in [
            ("executor", "admission/spark-executor-1.review.json"),
            ("driver", "admission/spark-driver-plain.review.json"),
        ] {
            let mut pod =
                sparkstage_tests::kube_double::recorded_json(recorded)?["request"]["object"]
                    .clone();
            // The recorded pods were made for the webhook's tests: what they asked goes.
            for field in ["labels", "annotations"] {
                if let Some(map) = pod["metadata"][field].as_object_mut() {
                    map.retain(|k, _| !k.starts_with("sparkstage.io/"));
                }
                for (k, v) in spec[role][field].as_object().into_iter().flatten() {
                    if !pod["metadata"][field].is_object() {
                        pod["metadata"][field] = serde_json::json!({});
                    }
                    pod["metadata"][field][k] = v.clone();
                }
            }
            let pod: Pod = match inject {
                "spec" => {
                    operator_mutation(&mut pod, &spec[role], &spec["volumes"]);
                    serde_json::from_value(pod)?
                }
                _ => {
                    let mut pod: Pod = serde_json::from_value(pod)?;
                    let asked = webhook::asked(&pod).map_err(anyhow::Error::msg)?;
                    let injection = Injection {
                        image: "sparkstage-init".to_owned(),
                        image_pull_policy: None,
                        token: TokenVolume::Secret {
                            name: secret["metadata"]["name"]
                                .as_str()
                                .context("name")?
                                .to_owned(),
                        },
                        args: asked.init_args(Some(POD_SERVER_URL.parse()?)),
                    };
                    let role = Role::of_pod(&pod);
                    injection.inject(&mut pod, role, asked.spark_container(role))?;
                    pod
                }
            };
            mounts_have_volumes(&pod).with_context(|| format!("--inject {inject}, {role}"))?;
            let spec_of_pod = pod.spec.as_ref().context("spec")?;
            let init = spec_of_pod
                .init_containers
                .iter()
                .flatten()
                .find(|c| c.name == "sparkstage-init")
                .context("no init container")?;
            // Spark's container mounts both directories.
            let spark_mounts: Vec<&str> = spec_of_pod.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            for dir in ["spark-jars", "spark-files"] {
                ensure!(
                    spark_mounts.contains(&format!("{ROOT}/{dir}").as_str()),
                    "{spark_mounts:?}"
                );
            }
            let pod_root = work.path().join(format!("{inject}-{role}"));
            let secret_dir = pod_root.join("secret");
            std::fs::create_dir_all(&secret_dir)?;
            std::fs::write(secret_dir.join("token"), &token)?;
            let volumes = pod_root.join("volumes");
            let args: Vec<String> = init
                .args
                .iter()
                .flatten()
                .map(|a| {
                    a.replace(ROOT, &volumes.display().to_string())
                        .replace(
                            sparkstage_injection::pod::TOKEN_DIR,
                            &secret_dir.display().to_string(),
                        )
                        .replace(POD_SERVER_URL.trim_end_matches('/'), &server.url())
                })
                .collect();
            let output =
                tokio::process::Command::new(sparkstage_tests::server::binary("sparkstage-init")?)
                    .args(&args)
                    .output()
                    .await?;
            ensure!(
                output.status.success(),
                "--inject {inject}, {role}: {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            ensure!(std::fs::read(volumes.join("spark-jars/wordcount.jar"))? == jar);
            ensure!(std::fs::read(volumes.join("spark-files/words.txt"))? == data);
            let package_file = package.trim_start_matches(&format!("local://{ROOT}/"));
            ensure!(std::fs::read(volumes.join(package_file))? == package_jar);
        }

        // The application as the operator submits it, on the driver pod's directories.
        let root = work.path().join(format!("{inject}-driver/volumes"));
        let local = |uri: &str| {
            uri.trim_start_matches("local://")
                .replace(ROOT, &root.display().to_string())
        };
        let list = |field: &str| -> String {
            spec["deps"][field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(local)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut run = spark_command(&spark, work.path())?;
        run.args(["--master", "local[2]", "--class"])
            .arg(spec["mainClass"].as_str().context("mainClass")?)
            .args(["--jars", &list("jars"), "--files", &list("files")])
            .arg(local(
                spec["mainApplicationFile"].as_str().context("main file")?,
            ));
        for argument in spec["arguments"].as_array().into_iter().flatten() {
            run.arg(local(argument.as_str().context("argument")?));
        }
        let out = run_spark(run).await?;
        let expected = format!("SPARKSTAGE_WORDCOUNT lines={lines} words={words}");
        ensure!(
            out.lines().any(|l| l.trim() == expected),
            "--inject {inject}: expected {expected}:\n{out}"
        );
    }
    Ok(())
}
