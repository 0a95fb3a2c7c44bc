//! Driver and executor pod templates that add the `sparkstage-init` init container.
//!
//! What a template gets (all names prefixed `sparkstage-`):
//! - two `emptyDir` volumes, mounted at the jars and files directories in the init container and
//!   in Spark's container (the one `spark.kubernetes.{driver,executor}.podTemplateContainerName`
//!   names, else the first, as Spark chooses; a template without containers gets one, which
//!   Spark then fills in);
//! - a `secret` volume with the bundle token, mounted read-only in the init container only;
//! - the init container, last among the template's init containers, with its arguments.
//!
//! A template the user passes is kept whole: everything it had stays, ours is added. Running the
//! hook on a template it produced replaces its own parts instead of adding them twice. A volume
//! or mount of the user's that collides with ours (same mount path in Spark's container) is an
//! error, not a silent override.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, KeyToPath, Pod, PodSpec, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};

pub const INIT_CONTAINER: &str = "sparkstage-init";
pub const JARS_VOLUME: &str = "sparkstage-jars";
pub const FILES_VOLUME: &str = "sparkstage-files";
pub const TOKEN_VOLUME: &str = "sparkstage-token";
/// Where the init container reads the bundle token.
pub const TOKEN_DIR: &str = "/var/run/secrets/sparkstage";
pub const TOKEN_KEY: &str = "token";

/// Which pod a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Driver,
    Executor,
}

impl Role {
    /// The container name Spark gives its own container when the template names none.
    pub fn default_container(self) -> &'static str {
        match self {
            Self::Driver => "spark-kubernetes-driver",
            Self::Executor => "spark-kubernetes-executor",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Driver => "driver",
            Self::Executor => "executor",
        }
    }
}

/// What the init container needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSpec {
    pub image: String,
    pub image_pull_policy: Option<String>,
    /// The server's URL as the pods reach it.
    pub server: String,
    pub bundle: String,
    pub secret: String,
    pub jars_dir: String,
    pub files_dir: String,
    /// The init container's deadline (`--timeout`), when not its default.
    pub timeout: Option<String>,
    /// Remote sources the init container fetches instead of Spark.
    pub sources: Vec<String>,
}

impl InitSpec {
    /// The init container's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--server".to_owned(),
            self.server.clone(),
            "--bundle".to_owned(),
            self.bundle.clone(),
            "--token-file".to_owned(),
            format!("{TOKEN_DIR}/{TOKEN_KEY}"),
            "--jars-dir".to_owned(),
            self.jars_dir.clone(),
            "--files-dir".to_owned(),
            self.files_dir.clone(),
        ];
        if let Some(timeout) = &self.timeout {
            args.extend(["--timeout".to_owned(), timeout.clone()]);
        }
        args.extend(self.sources.iter().cloned());
        args
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error(
        "the {role} pod template has no container named {name:?} (spark.kubernetes.{role}.podTemplateContainerName)"
    )]
    NoSuchContainer { role: &'static str, name: String },
    #[error(
        "the {role} pod template already mounts {what} at {path} in container {container:?}; sparkstage needs that path for the staged files (choose other download directories)"
    )]
    MountClash {
        role: &'static str,
        what: String,
        path: String,
        container: String,
    },
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// Replaces the item named `name` in `list` (by `key`), or appends it.
fn upsert<T>(list: &mut Vec<T>, item: T, key: impl Fn(&T) -> &str) {
    let name = key(&item).to_owned();
    match list.iter_mut().find(|x| key(x) == name) {
        Some(existing) => *existing = item,
        None => list.push(item),
    }
}

/// Adds the init container and its volumes to `base` (or to an empty pod).
/// `container_name` is Spark's `podTemplateContainerName` for this role, when set.
pub fn pod_template(
    base: Option<Pod>,
    spec: &InitSpec,
    role: Role,
    container_name: Option<&str>,
) -> Result<Pod, TemplateError> {
    let mut pod = base.unwrap_or_default();
    let pod_spec = pod.spec.get_or_insert_with(PodSpec::default);

    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    for name in [JARS_VOLUME, FILES_VOLUME] {
        upsert(
            volumes,
            Volume {
                name: name.to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            |v| &v.name,
        );
    }
    upsert(
        volumes,
        Volume {
            name: TOKEN_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(spec.secret.clone()),
                items: Some(vec![KeyToPath {
                    key: TOKEN_KEY.to_owned(),
                    path: TOKEN_KEY.to_owned(),
                    mode: None,
                }]),
                default_mode: Some(0o400),
                optional: None,
            }),
            ..Volume::default()
        },
        |v| &v.name,
    );

    // Spark's container: by name, else the first; one is added when there is none.
    if pod_spec.containers.is_empty() {
        pod_spec.containers.push(Container {
            name: container_name
                .unwrap_or(role.default_container())
                .to_owned(),
            ..Container::default()
        });
    }
    let container = match container_name {
        Some(name) => pod_spec
            .containers
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| TemplateError::NoSuchContainer {
                role: role.as_str(),
                name: name.to_owned(),
            })?,
        None => &mut pod_spec.containers[0],
    };
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    for (volume, path) in [
        (JARS_VOLUME, &spec.jars_dir),
        (FILES_VOLUME, &spec.files_dir),
    ] {
        if let Some(clash) = mounts.iter().find(|m| {
            m.mount_path.trim_end_matches('/') == path.trim_end_matches('/') && m.name != volume
        }) {
            return Err(TemplateError::MountClash {
                role: role.as_str(),
                what: format!("volume {:?}", clash.name),
                path: path.clone(),
                container: container.name.clone(),
            });
        }
        upsert(mounts, mount(volume, path, true), |m| &m.name);
    }

    let init = Container {
        name: INIT_CONTAINER.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        args: Some(spec.args()),
        volume_mounts: Some(vec![
            mount(JARS_VOLUME, &spec.jars_dir, false),
            mount(FILES_VOLUME, &spec.files_dir, false),
            mount(TOKEN_VOLUME, TOKEN_DIR, true),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    upsert(
        pod_spec.init_containers.get_or_insert_with(Vec::new),
        init,
        |c| &c.name,
    );
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> InitSpec {
        InitSpec {
            image: "ghcr.io/sparkstage/init:0.1.0".into(),
            image_pull_policy: None,
            server: "http://sparkstage.spark-system:10000".into(),
            bundle: "0123456789abcdef0123456789abcdef".into(),
            secret: "sparkstage-0123456789abcdef0123456789abcdef".into(),
            jars_dir: "/var/spark-data/spark-jars".into(),
            files_dir: "/var/spark-data/spark-files".into(),
            timeout: None,
            sources: vec![],
        }
    }

    #[test]
    fn a_fresh_template_gets_spark_container_volumes_and_init_container() {
        let pod = pod_template(None, &spec(), Role::Executor, None).expect("template");
        let s = pod.spec.expect("spec");
        assert_eq!(s.containers.len(), 1);
        assert_eq!(s.containers[0].name, "spark-kubernetes-executor");
        let mounts: Vec<_> = s.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                (JARS_VOLUME, "/var/spark-data/spark-jars", Some(true)),
                (FILES_VOLUME, "/var/spark-data/spark-files", Some(true))
            ]
        );
        let init = &s.init_containers.expect("init")[0];
        assert_eq!(init.name, INIT_CONTAINER);
        assert!(
            init.args
                .iter()
                .flatten()
                .any(|a| a == "/var/run/secrets/sparkstage/token")
        );
        assert_eq!(s.volumes.expect("volumes").len(), 3);
    }

    #[test]
    fn clashing_mounts_and_unknown_containers_are_errors() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    volume_mounts: Some(vec![mount("data", "/var/spark-data/spark-jars/", false)]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let e = pod_template(Some(pod.clone()), &spec(), Role::Driver, None).expect_err("clash");
        assert!(matches!(e, TemplateError::MountClash { .. }), "{e}");
        let e = pod_template(Some(pod), &spec(), Role::Driver, Some("spark")).expect_err("name");
        assert!(e.to_string().contains("\"spark\""), "{e}");
    }

    #[test]
    fn applying_twice_replaces_rather_than_duplicates() {
        let once = pod_template(None, &spec(), Role::Driver, None).expect("once");
        let mut other = spec();
        other.bundle = "f".repeat(32);
        let twice = pod_template(Some(once), &other, Role::Driver, None).expect("twice");
        let s = twice.spec.expect("spec");
        assert_eq!(s.volumes.as_ref().map(Vec::len), Some(3));
        let inits = s.init_containers.expect("init");
        assert_eq!(inits.len(), 1);
        assert!(inits[0].args.iter().flatten().any(|a| *a == other.bundle));
        assert_eq!(
            s.containers[0].volume_mounts.as_ref().map(Vec::len),
            Some(2)
        );
    }

    /// A rich user template keeps every field: removing exactly what we add gives it back.
    #[test]
    fn a_merged_template_is_the_users_plus_ours() {
        let user: serde_json::Value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"labels": {"team": "data"}, "annotations": {"a": "b"}},
            "spec": {
                "serviceAccountName": "spark",
                "nodeSelector": {"pool": "spark"},
                "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [{"name": "conf", "configMap": {"name": "app-conf"}}],
                "initContainers": [{"name": "warmup", "image": "busybox", "command": ["true"]}],
                "containers": [
                    {"name": "sidecar", "image": "envoy"},
                    {"name": "spark", "env": [{"name": "X", "value": "1"}],
                     "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}]}
                ]
            }
        });
        let pod: Pod = serde_json::from_value(user.clone()).expect("a Pod");
        let merged = pod_template(Some(pod), &spec(), Role::Driver, Some("spark")).expect("merge");
        let mut merged = serde_json::to_value(&merged).expect("json");
        // Ours, and nothing else, went in.
        let spec_json = &mut merged["spec"];
        let ours = |v: &serde_json::Value| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("sparkstage-"))
        };
        for list in ["volumes", "initContainers"] {
            let items = spec_json[list].as_array_mut().expect("list");
            let before = items.len();
            items.retain(|v| !ours(v));
            assert_eq!(before - items.len(), if list == "volumes" { 3 } else { 1 });
        }
        let spark = &mut spec_json["containers"][1]["volumeMounts"];
        let mounts = spark.as_array_mut().expect("mounts");
        mounts.retain(|v| !ours(v));
        assert!(
            spec_json["containers"][0].get("volumeMounts").is_none(),
            "the sidecar is not Spark's container"
        );
        assert_eq!(merged, user);
    }
}
