//! The init container, its volumes and their mounts in Spark's container, added to a pod: a pod
//! template the submit hook writes, or a pod the admission webhook patches.
//!
//! What a pod gets (all names prefixed `sparkstage-`):
//! - two `emptyDir` volumes, mounted at the jars and files directories in the init container and
//!   read-only in Spark's container (see [`spark_container`]; a template without containers gets
//!   one, which Spark then fills in);
//! - the token volume, mounted read-only in the init container only: the bundle token's Secret,
//!   or the pod's own ServiceAccount token for audience [`TOKEN_AUDIENCE`] ([`TokenVolume`]);
//! - the init container, last among the pod's init containers, with its command line;
//! - the label [`BUNDLE_LABEL`] with the bundle's id, which the server's owner tracking watches.
//!
//! Everything the pod had stays. Injecting into a pod that has our parts already replaces them
//! instead of adding them twice. A mount of the user's at one of our paths in Spark's container
//! is an error, not a silent override.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, KeyToPath, Pod, PodSpec, ProjectedVolumeSource,
    SecretVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
pub use sparkstage_api::bundles::BUNDLE_LABEL;

use crate::command::InitArgs;
use crate::layout::{DEFAULT_FILES_DIR, DEFAULT_JARS_DIR, Layout};

pub const INIT_CONTAINER: &str = "sparkstage-init";
/// The init container's image unless told otherwise: the one built from `deploy/images/` for
/// this version.
pub const DEFAULT_INIT_IMAGE: &str = concat!(
    "ghcr.io/sparkstage/sparkstage-init:",
    env!("CARGO_PKG_VERSION")
);
pub const JARS_VOLUME: &str = "sparkstage-jars";
pub const FILES_VOLUME: &str = "sparkstage-files";
pub const TOKEN_VOLUME: &str = "sparkstage-token";
/// Every volume and container we add is named with this prefix.
pub const NAME_PREFIX: &str = "sparkstage-";
/// Where the init container reads its token.
pub const TOKEN_DIR: &str = "/var/run/secrets/sparkstage";
/// The token's file name in [`TOKEN_DIR`], and its key in the bundle's Secret.
pub const TOKEN_KEY: &str = "token";
/// The audience of the pod's ServiceAccount token: the server asks for it in its TokenReview,
/// so a token meant for the API server (or anyone else) is not accepted, and ours is not
/// accepted by the API server.
pub const TOKEN_AUDIENCE: &str = "sparkstage";
/// The projected token's lifetime: the shortest the API server accepts (10 minutes). The kubelet
/// renews it long before; the init container reads it once, at its start.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 600;

/// The Secret that carries a bundle's token to its pods: a valid DNS subdomain, one per bundle.
pub fn secret_name(bundle: &str) -> String {
    format!("{NAME_PREFIX}{}", bundle.to_ascii_lowercase())
}

/// Which pod of a Spark application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Driver,
    Executor,
}

impl Role {
    /// The container name Spark gives its own container when no template names one.
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

    /// How messages name a pod of this role.
    pub fn pod(self) -> &'static str {
        match self {
            Self::Driver => "driver pod",
            Self::Executor => "executor pod",
        }
    }

    /// The role Spark gives a pod it creates, by its `spark-role` label.
    pub fn of_pod(pod: &Pod) -> Option<Self> {
        match pod.metadata.labels.as_ref()?.get("spark-role")?.as_str() {
            "driver" => Some(Self::Driver),
            "executor" => Some(Self::Executor),
            _ => None,
        }
    }
}

/// What the init container authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVolume {
    /// The bundle's token, from the Secret of this name in the pod's namespace.
    Secret { name: String },
    /// The pod's own ServiceAccount token, projected for [`TOKEN_AUDIENCE`]; the server checks
    /// it with a TokenReview.
    ServiceAccount,
}

/// The init container for some sources, and how it gets into a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub token: TokenVolume,
    /// The init container's command line. Its token file is set to [`TOKEN_DIR`]`/`[`TOKEN_KEY`]
    /// when it fetches a bundle; its directories are the mounts'.
    pub args: InitArgs,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    #[error("the {pod} has no container named {name:?}")]
    NoSuchContainer { pod: &'static str, name: String },
    #[error(
        "the {pod} already mounts {what} at {path} in container {container:?}; sparkstage needs that path for the staged files (choose other download directories)"
    )]
    MountClash {
        pod: &'static str,
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

/// Two paths name the same directory (a trailing slash aside).
fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Whether a pod has our init container already.
pub fn has_init_container(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|list| list.iter().any(|c| c.name == INIT_CONTAINER))
}

/// Which container of a pod is Spark's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparkContainer<'a> {
    /// The one of this name (`spark.kubernetes.{driver,executor}.podTemplateContainerName`, or
    /// the webhook's `sparkstage.io/container` annotation).
    Named(&'a str),
    /// In a pod template: the first, as Spark picks it when no name is given.
    TemplateFirst,
    /// In a pod Spark created: the one with Spark's default name for the role, else the last
    /// (Spark appends its container after the template's others and keeps the template
    /// container's name).
    CreatedBySpark(Role),
    /// In any other pod: the first.
    First,
}

/// The index of Spark's container in `spec`: `None` when the pod has no containers, or none of
/// the name asked for.
pub fn spark_container(spec: &PodSpec, which: SparkContainer<'_>) -> Option<usize> {
    let containers = &spec.containers;
    let first = (!containers.is_empty()).then_some(0);
    match which {
        SparkContainer::Named(name) => containers.iter().position(|c| c.name == name),
        SparkContainer::TemplateFirst | SparkContainer::First => first,
        SparkContainer::CreatedBySpark(role) => containers
            .iter()
            .position(|c| c.name == role.default_container())
            .or(containers.len().checked_sub(1)),
    }
}

impl Injection {
    /// The download directories.
    pub fn layout(&self) -> Layout {
        let dir = |d: &Option<std::path::PathBuf>, default: &str| {
            d.as_ref()
                .map_or_else(|| default.to_owned(), |p| p.display().to_string())
        };
        Layout {
            jars_dir: dir(&self.args.jars_dir, DEFAULT_JARS_DIR),
            files_dir: dir(&self.args.files_dir, DEFAULT_FILES_DIR),
        }
    }

    /// The init container's command line as the pod runs it: the directories always written
    /// out, and the token file where the token volume is mounted.
    pub fn command_line(&self) -> Vec<String> {
        let layout = self.layout();
        let mut args = self.args.clone();
        args.jars_dir = Some(layout.jars_dir.into());
        args.files_dir = Some(layout.files_dir.into());
        if args.bundle.is_some() {
            args.token_file = Some(format!("{TOKEN_DIR}/{TOKEN_KEY}").into());
        }
        args.to_argv()
    }

    /// The volumes the pod gets: the token's only when it fetches a bundle.
    pub fn volumes(&self) -> Vec<Volume> {
        let empty = |name: &str| Volume {
            name: name.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        };
        let token = match &self.token {
            TokenVolume::Secret { name } => Volume {
                name: TOKEN_VOLUME.to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(name.clone()),
                    items: Some(vec![KeyToPath {
                        key: TOKEN_KEY.to_owned(),
                        path: TOKEN_KEY.to_owned(),
                        mode: None,
                    }]),
                    // Readable by the init container whatever user it runs as (the image is
                    // nonroot); no other container mounts it.
                    default_mode: Some(0o444),
                    optional: None,
                }),
                ..Volume::default()
            },
            TokenVolume::ServiceAccount => Volume {
                name: TOKEN_VOLUME.to_owned(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: Some(TOKEN_AUDIENCE.to_owned()),
                            expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                            path: TOKEN_KEY.to_owned(),
                        }),
                        ..VolumeProjection::default()
                    }]),
                    default_mode: None,
                }),
                ..Volume::default()
            },
        };
        let mut volumes = vec![empty(JARS_VOLUME), empty(FILES_VOLUME)];
        if self.args.bundle.is_some() {
            volumes.push(token);
        }
        volumes
    }

    /// The mounts in Spark's container: the two directories, read-only.
    pub fn spark_mounts(&self) -> Vec<VolumeMount> {
        let layout = self.layout();
        vec![
            mount(JARS_VOLUME, &layout.jars_dir, true),
            mount(FILES_VOLUME, &layout.files_dir, true),
        ]
    }

    /// The token's mount, read-only, when a bundle is fetched.
    pub fn token_mount(&self) -> Option<VolumeMount> {
        self.args
            .bundle
            .as_ref()
            .map(|_| mount(TOKEN_VOLUME, TOKEN_DIR, true))
    }

    /// The init container.
    pub fn init_container(&self) -> Container {
        let layout = self.layout();
        Container {
            name: INIT_CONTAINER.to_owned(),
            image: Some(self.image.clone()),
            image_pull_policy: self.image_pull_policy.clone(),
            args: Some(self.command_line()),
            volume_mounts: Some(
                [
                    Some(mount(JARS_VOLUME, &layout.jars_dir, false)),
                    Some(mount(FILES_VOLUME, &layout.files_dir, false)),
                    self.token_mount(),
                ]
                .into_iter()
                .flatten()
                .collect(),
            ),
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
        }
    }

    /// Adds the init container, its volumes, the mounts in Spark's container and the bundle
    /// label to `pod`, a Spark pod of `role` or (`None`) any other pod. A pod without
    /// containers (a template) gets one for Spark.
    pub fn inject(
        &self,
        pod: &mut Pod,
        role: Option<Role>,
        which: SparkContainer<'_>,
    ) -> Result<(), InjectError> {
        let what = role.map_or("pod", Role::pod);
        if let Some(bundle) = &self.args.bundle {
            pod.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(BUNDLE_LABEL.to_owned(), bundle.clone());
        }
        let pod_spec = pod.spec.get_or_insert_with(PodSpec::default);
        // A template without containers gets Spark's, which Spark then fills in.
        if pod_spec.containers.is_empty() {
            let name = match (which, role) {
                (SparkContainer::Named(name), _) => name,
                (_, Some(role)) => role.default_container(),
                (_, None) => "main",
            };
            pod_spec.containers.push(Container {
                name: name.to_owned(),
                ..Container::default()
            });
        }
        let index =
            spark_container(pod_spec, which).ok_or_else(|| InjectError::NoSuchContainer {
                pod: what,
                name: match which {
                    SparkContainer::Named(name) => name.to_owned(),
                    _ => String::new(),
                },
            })?;
        let container = &mut pod_spec.containers[index];
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        for ours in self.spark_mounts() {
            if let Some(clash) = mounts
                .iter()
                .find(|m| same_path(&m.mount_path, &ours.mount_path) && m.name != ours.name)
            {
                return Err(InjectError::MountClash {
                    pod: what,
                    what: format!("volume {:?}", clash.name),
                    path: ours.mount_path.clone(),
                    container: container.name.clone(),
                });
            }
            upsert(mounts, ours, |m| &m.name);
        }
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        for volume in self.volumes() {
            upsert(volumes, volume, |v| &v.name);
        }
        upsert(
            pod_spec.init_containers.get_or_insert_with(Vec::new),
            self.init_container(),
            |c| &c.name,
        );
        Ok(())
    }
}

impl Injection {
    /// The JSON patch that injects into `pod` as it is (an admission review's object): the
    /// difference between the pod and the pod with our parts. It only adds, and it adds whole
    /// lists (and maps) where the pod has none: an append (`/spec/initContainers/-`) to a list
    /// that does not exist is refused by the API server.
    ///
    /// Only the parts the injection touches are compared (the labels, the volumes, the init
    /// containers, the containers that changed), each through the same typed round trip on both
    /// sides, so the rest of the pod (its managed fields, fields this version of the types does
    /// not know) is neither serialized nor ever touched by the patch.
    pub fn patch(
        &self,
        pod: &Pod,
        role: Option<Role>,
        which: SparkContainer<'_>,
    ) -> Result<json_patch::Patch, InjectError> {
        let mut injected = pod.clone();
        self.inject(&mut injected, role, which)?;
        let mut ops = Vec::new();
        let (Some(spec), Some(new_spec)) = (&pod.spec, &injected.spec) else {
            // No spec at all (an empty template): it comes whole.
            diff_part(
                &mut ops,
                &["spec"],
                pod.spec.as_ref(),
                injected.spec.as_ref(),
            );
            diff_part(
                &mut ops,
                &["metadata", "labels"],
                pod.metadata.labels.as_ref(),
                injected.metadata.labels.as_ref(),
            );
            return Ok(json_patch::Patch(ops));
        };
        diff_part(
            &mut ops,
            &["metadata", "labels"],
            pod.metadata.labels.as_ref(),
            injected.metadata.labels.as_ref(),
        );
        diff_part(
            &mut ops,
            &["spec", "volumes"],
            spec.volumes.as_ref(),
            new_spec.volumes.as_ref(),
        );
        diff_part(
            &mut ops,
            &["spec", "initContainers"],
            spec.init_containers.as_ref(),
            new_spec.init_containers.as_ref(),
        );
        if spec.containers.len() == new_spec.containers.len() {
            for (index, (was, now)) in spec.containers.iter().zip(&new_spec.containers).enumerate()
            {
                let index = index.to_string();
                diff_part(
                    &mut ops,
                    &["spec", "containers", &index],
                    Some(was),
                    Some(now),
                );
            }
        } else {
            // A pod without containers got Spark's.
            diff_part(
                &mut ops,
                &["spec", "containers"],
                Some(&spec.containers),
                Some(&new_spec.containers),
            );
        }
        Ok(json_patch::Patch(ops))
    }
}

/// Adds to `ops` what turns `before` into `after` at `path` (JSON names).
fn diff_part<T: serde::Serialize + PartialEq>(
    ops: &mut Vec<json_patch::PatchOperation>,
    path: &[&str],
    before: Option<&T>,
    after: Option<&T>,
) {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation, RemoveOperation};
    if before == after {
        return;
    }
    let at = PointerBuf::from_tokens(path.iter().copied());
    let value = |v: &T| serde_json::to_value(v).unwrap_or_default();
    match (before, after) {
        (None, Some(after)) => ops.push(PatchOperation::Add(AddOperation {
            path: at,
            value: value(after),
        })),
        (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation { path: at })),
        (Some(before), Some(after)) => {
            for op in json_patch::diff(&value(before), &value(after)).0 {
                ops.push(match op {
                    PatchOperation::Add(mut op) => {
                        op.path = at.concat(&op.path);
                        PatchOperation::Add(op)
                    }
                    PatchOperation::Remove(mut op) => {
                        op.path = at.concat(&op.path);
                        PatchOperation::Remove(op)
                    }
                    PatchOperation::Replace(mut op) => {
                        op.path = at.concat(&op.path);
                        PatchOperation::Replace(op)
                    }
                    other => other,
                });
            }
        }
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injection() -> Injection {
        let mut args = InitArgs::none();
        args.server = Some("http://sparkstage.spark-system:10000".parse().expect("url"));
        args.bundle = Some("0123456789abcdef0123456789abcdef".into());
        Injection {
            image: "ghcr.io/sparkstage/init:0.1.0".into(),
            image_pull_policy: None,
            token: TokenVolume::Secret {
                name: secret_name("0123456789abcdef0123456789abcdef"),
            },
            args,
        }
    }

    fn template(base: Option<Pod>, role: Role, name: Option<&str>) -> Result<Pod, InjectError> {
        let mut pod = base.unwrap_or_default();
        let which = name.map_or(SparkContainer::TemplateFirst, SparkContainer::Named);
        injection().inject(&mut pod, Some(role), which)?;
        Ok(pod)
    }

    #[test]
    fn a_fresh_template_gets_spark_container_volumes_and_init_container() {
        let pod = template(None, Role::Executor, None).expect("template");
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
        assert_eq!(
            pod.metadata.labels.expect("labels")[BUNDLE_LABEL],
            "0123456789abcdef0123456789abcdef"
        );
    }

    /// The init container's arguments parse back, with clap, to what was asked.
    #[test]
    fn the_init_containers_arguments_are_its_parsers() {
        use clap::Parser;
        let pod = template(None, Role::Driver, None).expect("template");
        let init = &pod.spec.expect("spec").init_containers.expect("init")[0];
        let argv =
            std::iter::once("sparkstage-init".to_owned()).chain(init.args.clone().expect("args"));
        let parsed = InitArgs::try_parse_from(argv).expect("parses");
        assert_eq!(parsed.bundle, injection().args.bundle);
        assert_eq!(
            parsed.token_file.as_deref(),
            Some(std::path::Path::new("/var/run/secrets/sparkstage/token"))
        );
        assert_eq!(
            parsed.jars_dir.as_deref(),
            Some(std::path::Path::new(DEFAULT_JARS_DIR))
        );
    }

    #[test]
    fn a_service_account_token_is_projected_for_our_audience() {
        let mut injection = injection();
        injection.token = TokenVolume::ServiceAccount;
        let volume = injection.volumes().pop().expect("token volume");
        assert_eq!(volume.name, TOKEN_VOLUME);
        let projection = &volume
            .projected
            .expect("projected")
            .sources
            .expect("sources")[0];
        let token = projection.service_account_token.as_ref().expect("token");
        assert_eq!(token.audience.as_deref(), Some(TOKEN_AUDIENCE));
        assert_eq!(token.expiration_seconds, Some(600));
        assert_eq!(token.path, TOKEN_KEY);
        // Without a bundle there is no token to fetch with, and no volume for it.
        injection.args.bundle = None;
        assert!(injection.volumes().iter().all(|v| v.name != TOKEN_VOLUME));
        let init = injection.init_container();
        assert!(
            init.volume_mounts
                .iter()
                .flatten()
                .all(|m| m.name != TOKEN_VOLUME)
        );
        assert!(!init.args.iter().flatten().any(|a| a == "--token-file"));
    }

    #[test]
    fn spark_container_is_chosen_as_spark_chooses_it() {
        let spec = |names: &[&str]| PodSpec {
            containers: names
                .iter()
                .map(|n| Container {
                    name: (*n).into(),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        };
        let two = spec(&["sidecar", "spark-kubernetes-executor"]);
        let created = |role| SparkContainer::CreatedBySpark(role);
        assert_eq!(spark_container(&two, created(Role::Executor)), Some(1));
        assert_eq!(
            spark_container(&two, SparkContainer::TemplateFirst),
            Some(0)
        );
        // A template's container named otherwise keeps its name, and Spark appends it.
        let renamed = spec(&["sidecar", "spark"]);
        assert_eq!(spark_container(&renamed, created(Role::Driver)), Some(1));
        assert_eq!(
            spark_container(&two, SparkContainer::Named("sidecar")),
            Some(0)
        );
        assert_eq!(spark_container(&two, SparkContainer::Named("x")), None);
        assert_eq!(spark_container(&spec(&[]), created(Role::Driver)), None);
        assert_eq!(spark_container(&spec(&[]), SparkContainer::First), None);
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
        let e = template(Some(pod.clone()), Role::Driver, None).expect_err("clash");
        assert!(matches!(e, InjectError::MountClash { .. }), "{e}");
        let e = template(Some(pod), Role::Driver, Some("spark")).expect_err("name");
        assert!(e.to_string().contains("\"spark\""), "{e}");
    }

    #[test]
    fn applying_twice_replaces_rather_than_duplicates() {
        let mut pod = template(None, Role::Driver, None).expect("once");
        let mut other = injection();
        other.args.bundle = Some("f".repeat(32));
        other
            .inject(&mut pod, Some(Role::Driver), SparkContainer::TemplateFirst)
            .expect("twice");
        let s = pod.spec.expect("spec");
        assert_eq!(s.volumes.as_ref().map(Vec::len), Some(3));
        let inits = s.init_containers.expect("init");
        assert_eq!(inits.len(), 1);
        assert!(inits[0].args.iter().flatten().any(|a| *a == "f".repeat(32)));
        assert_eq!(
            s.containers[0].volume_mounts.as_ref().map(Vec::len),
            Some(2)
        );
    }

    /// The patch, made of the touched parts only, turns each pod into the injected pod: pods
    /// with and without labels, volumes, init containers, mounts, containers or a spec.
    #[test]
    fn the_patch_turns_the_pod_into_the_injected_pod() {
        let pods = [
            serde_json::json!({}),
            serde_json::json!({"spec": {"containers": []}}),
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
            serde_json::json!({
                "metadata": {"labels": {"a": "b"}, "managedFields": [{"manager": "x"}]},
                "spec": {
                    "volumes": [{"name": "v", "emptyDir": {}}],
                    "initContainers": [{"name": "first"}],
                    "containers": [
                        {"name": "side", "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                        {"name": "spark-kubernetes-driver", "volumeMounts": [{"name": "v", "mountPath": "/w"}]}
                    ]
                }
            }),
        ];
        for (i, json) in pods.into_iter().enumerate() {
            let pod: Pod = serde_json::from_value(json).expect("a pod");
            let which = SparkContainer::CreatedBySpark(Role::Driver);
            let patch = injection()
                .patch(&pod, Some(Role::Driver), which)
                .expect("patch");
            let mut injected = pod.clone();
            injection()
                .inject(&mut injected, Some(Role::Driver), which)
                .expect("inject");
            let mut patched = serde_json::to_value(&pod).expect("json");
            json_patch::patch(&mut patched, &patch).expect("applies");
            assert_eq!(
                patched,
                serde_json::to_value(&injected).expect("json"),
                "pod {i}"
            );
            assert!(
                patch
                    .0
                    .iter()
                    .all(|op| matches!(op, json_patch::PatchOperation::Add(_))),
                "pod {i}: only additions: {patch:?}"
            );
        }
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
        let merged = template(Some(pod), Role::Driver, Some("spark")).expect("merge");
        let mut merged = serde_json::to_value(&merged).expect("json");
        let labels = merged["metadata"]["labels"]
            .as_object_mut()
            .expect("labels");
        assert!(labels.remove(BUNDLE_LABEL).is_some());
        // Ours, and nothing else, went in.
        let spec_json = &mut merged["spec"];
        let ours = |v: &serde_json::Value| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(NAME_PREFIX))
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
