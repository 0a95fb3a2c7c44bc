//! `sparkstage submit`: stage a submission's local files, rewrite it, add the init container
//! through pod templates, create the token Secret, run spark-submit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use sparkstage_api::bundles::{BUNDLE_LABEL, Owner};
use sparkstage_api::resolve::ResolveRequest;

use crate::deps::{Layout, Plan, plan};
use crate::progress::Progress;
use crate::stage::{BundleSpec, DigestCache, ServerClient, StageFile, stage};
use crate::submit_args::SubmitArgs;
use sparkstage_api::size::format_size;
use sparkstage_injection::{InitArgs, Injection, Role, SparkContainer, TokenVolume};

pub use sparkstage_injection::layout::{DEFAULT_FILES_DIR, DEFAULT_JARS_DIR};

/// The configuration keys of the Kubernetes resource-staging-server fork of Spark, accepted as
/// aliases of our options when the submission sets them (defined with the fork's init container
/// properties).
pub use sparkstage_injection::fork::{
    FILES_DIR as FORK_FILES_DIR, INTERNAL_SERVER as FORK_INTERNAL_SERVER,
    JARS_DIR as FORK_JARS_DIR, SERVER as FORK_SERVER, TIMEOUT as FORK_TIMEOUT,
};

/// How the init container gets into the pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Inject {
    /// Pod templates written here (`spark.kubernetes.{driver,executor}.podTemplateFile`), with
    /// the bundle token in a Secret.
    #[default]
    Templates,
    /// Labels and annotations for the server's admission webhook; no Secret when the server
    /// accepts the pods' own ServiceAccount tokens.
    Webhook,
}

/// What `sparkstage submit` was asked, before the submission's own settings are read.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    pub server: Option<String>,
    pub internal_server: Option<String>,
    pub upload_token: Option<String>,
    pub namespace: Option<String>,
    pub init_image: String,
    pub init_pull_policy: Option<String>,
    pub jars_dir: Option<String>,
    pub files_dir: Option<String>,
    pub init_timeout: Option<String>,
    pub ttl: Option<String>,
    pub templates_dir: Option<PathBuf>,
    pub parallel_uploads: usize,
    /// Remote dependencies (http(s), s3/s3a, gs, az, hdfs) are fetched by the init container
    /// rather than by Spark.
    pub fetch_remote: bool,
    /// Who fetches them.
    pub remote: RemoteFetch,
    pub dry_run: bool,
    pub quiet: bool,
    pub inject: Inject,
}

/// Who fetches `--fetch-remote`'s URIs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RemoteFetch {
    /// The server when it can (`GET /v1/info` says `sources`), else the pods.
    #[default]
    Auto,
    /// The server, once for the cluster, as source entries of the bundle.
    Server,
    /// Each init container, from the origin.
    Pod,
}

/// Splits `remote` (`--fetch-remote`'s URIs) into those the init containers fetch and the
/// source entries the server fetches, as `mode` says.
pub async fn split_remote(
    client: &ServerClient,
    mode: RemoteFetch,
    remote: Vec<String>,
) -> Result<(Vec<String>, Vec<sparkstage_api::bundles::SourceEntry>)> {
    let server = match (remote.is_empty(), mode) {
        (true, _) | (false, RemoteFetch::Pod) => false,
        (false, RemoteFetch::Server) => true,
        (false, RemoteFetch::Auto) => client.info().await?.sources,
    };
    match server {
        true => Ok((Vec::new(), crate::stage::source_entries(&remote)?)),
        false => Ok((remote, Vec::new())),
    }
}

/// A submission's effective Spark configuration: `--conf` over the properties file.
struct Conf<'a> {
    args: &'a SubmitArgs,
    properties: &'a BTreeMap<String, String>,
}

impl Conf<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.args.effective_conf(key, self.properties)
    }
}

/// Sets `key` in the submission: in place when a `--conf` sets it, else with a new `--conf`
/// (which wins over the properties file).
fn set_conf(args: &mut SubmitArgs, key: &str, value: &str) {
    match args.conf_index(key) {
        Some(index) => args.set_value(index, format!("{key}={value}")),
        None => args.add_conf(key, value),
    }
}

fn read_template(path: &str) -> Result<Pod> {
    let path = path.strip_prefix("file://").unwrap_or(path);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the pod template {path}"))?;
    serde_norway::from_str(&text)
        .with_context(|| format!("the pod template {path} is not a Kubernetes Pod"))
}

/// The result of preparing a submission: everything but running it.
pub struct Prepared {
    /// spark-submit and its rewritten arguments.
    pub command: Vec<String>,
    pub templates: Vec<(Role, PathBuf, String)>,
    /// The Secret to create, and as YAML; none when pods fetch with their own token.
    pub secret: Option<(k8s_openapi::api::core::v1::Secret, String)>,
    /// Keeps a temporary templates directory alive until the submission ran.
    pub _templates_dir: Option<tempfile::TempDir>,
    pub summary: String,
    /// The bundle's id and the namespace of its Secret and pods.
    pub bundle: String,
    pub namespace: String,
}

/// Stages and rewrites `command` (`spark-submit` and its arguments).
pub async fn prepare(options: &SubmitOptions, command: &[String]) -> Result<Option<Prepared>> {
    let Some((spark_submit, spark_args)) = command.split_first() else {
        bail!("no spark-submit command after `--`");
    };
    let args = SubmitArgs::parse(spark_args)?;
    let properties_file = match args.value("--properties-file") {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --properties-file {path}"))?,
        ),
        None => None,
    };
    let defaults = match crate::properties::spark_defaults_file(|v| std::env::var_os(v)) {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let properties = crate::properties::merged(
        properties_file.as_deref(),
        defaults.as_deref(),
        args.has_switch("--load-spark-defaults"),
    );
    let conf = Conf {
        args: &args,
        properties: &properties,
    };
    let server = options
        .server
        .clone()
        .or_else(|| conf.get(FORK_SERVER))
        .context("no staging server: give --server (SPARKSTAGE_SERVER)")?;
    let internal_server = options
        .internal_server
        .clone()
        .or_else(|| conf.get(FORK_INTERNAL_SERVER))
        .unwrap_or_else(|| server.clone());
    let layout = Layout {
        jars_dir: options
            .jars_dir
            .clone()
            .or_else(|| conf.get(FORK_JARS_DIR))
            .unwrap_or_else(|| DEFAULT_JARS_DIR.to_owned()),
        files_dir: options
            .files_dir
            .clone()
            .or_else(|| conf.get(FORK_FILES_DIR))
            .unwrap_or_else(|| DEFAULT_FILES_DIR.to_owned()),
    };
    let timeout = options
        .init_timeout
        .clone()
        .or_else(|| conf.get(FORK_TIMEOUT));
    let namespace = options
        .namespace
        .clone()
        .or_else(|| conf.get("spark.kubernetes.namespace"))
        .unwrap_or_else(|| "default".to_owned());
    let base_templates = [
        (
            Role::Driver,
            conf.get("spark.kubernetes.driver.podTemplateFile"),
            conf.get("spark.kubernetes.driver.podTemplateContainerName"),
        ),
        (
            Role::Executor,
            conf.get("spark.kubernetes.executor.podTemplateFile"),
            conf.get("spark.kubernetes.executor.podTemplateContainerName"),
        ),
    ];
    let app_name = conf
        .get("spark.app.name")
        .or_else(|| args.value("--name").map(str::to_owned));

    let packages = crate::packages::find(&args, &properties)?;
    let cwd = std::env::current_dir()?;
    let Plan {
        mut args,
        deps,
        remote,
    } = plan(
        args.clone(),
        &properties,
        &layout,
        &cwd,
        options.fetch_remote,
    )?;
    let client = ServerClient::new(&server, options.upload_token.clone())?;
    // --packages: the server resolves them and keeps the jars; they join the bundle as
    // entries it already stores, and Spark is no longer asked to run Ivy.
    let mut stored = Vec::new();
    if let Some(packages) = &packages {
        let response = client
            .resolve(&ResolveRequest {
                coordinates: packages.coordinates.clone(),
                repositories: packages.repositories.clone(),
                exclusions: packages.excludes.clone(),
                mode: None,
            })
            .await?;
        crate::packages::remove(&mut args, &properties);
        let jars_dir = layout.jars_dir.trim_end_matches('/');
        let uris: Vec<String> = response
            .artifacts
            .iter()
            .map(|a| format!("local://{jars_dir}/{}", a.file_name))
            .collect();
        crate::packages::add_jars(&mut args, &properties, &uris);
        stored = crate::packages::bundle_entries(&response.artifacts);
    }
    if deps.is_empty() && remote.is_empty() && stored.is_empty() {
        return Ok(None);
    }
    let (remote, sources) = split_remote(&client, options.remote, remote).await?;
    if deps.is_empty() && stored.is_empty() && sources.is_empty() {
        bail!(
            "--fetch-remote --remote pod with no local file to stage is not supported yet: the \
             init container needs a bundle; let the server fetch them (--remote server)"
        );
    }
    let files: Vec<StageFile> = deps
        .iter()
        .map(|d| StageFile {
            path: d.path.clone(),
            name: d.name.clone(),
            kind: d.kind,
        })
        .collect();
    let mut cache = DigestCache::load(DigestCache::default_path());
    let mut labels = BTreeMap::new();
    if let Some(name) = &app_name {
        labels.insert("spark-app-name".to_owned(), name.clone());
    }
    let owner = Owner {
        namespace: Some(namespace.clone()),
        labels,
        spark_app_id: None,
    };
    let progress = Progress::new(options.quiet);
    let staged = stage(
        &client,
        &files,
        BundleSpec {
            stored: &stored,
            sources,
            owner: Some(owner),
            ttl: options.ttl.clone(),
        },
        &mut cache,
        options.parallel_uploads,
        &progress,
    )
    .await?;
    let bundle = staged.bundle.id.clone();
    // Owner tracking finds the application's pods by this label (the server's lifecycle).
    for role in ["driver", "executor"] {
        set_conf(
            &mut args,
            &format!("spark.kubernetes.{role}.label.{BUNDLE_LABEL}"),
            &bundle,
        );
    }

    let secret = crate::secret::secret(&namespace, &bundle, &staged.bundle.token);
    let mut init_args = InitArgs::none();
    init_args.server = Some(
        internal_server
            .parse()
            .with_context(|| format!("the server URL for pods is not a URL: {internal_server}"))?,
    );
    init_args.bundle = Some(bundle.clone());
    init_args.jars_dir = Some(layout.jars_dir.clone().into());
    init_args.files_dir = Some(layout.files_dir.clone().into());
    init_args.timeout = timeout
        .map(|t| {
            t.parse::<humantime::Duration>()
                .with_context(|| format!("the init container's timeout {t:?} is not a duration"))
        })
        .transpose()?;
    init_args.sources = remote;
    let init = Injection {
        image: options.init_image.clone(),
        image_pull_policy: options.init_pull_policy.clone(),
        token: TokenVolume::Secret {
            name: crate::secret::secret_name(&bundle),
        },
        args: init_args,
    };
    let mut templates = Vec::new();
    let mut keep = None;
    let secret = match options.inject {
        Inject::Templates => {
            let (dir, temp) = match &options.templates_dir {
                Some(dir) => (dir.clone(), None),
                None => {
                    let temp = tempfile::Builder::new()
                        .prefix("sparkstage-templates-")
                        .tempdir()?;
                    (temp.path().to_path_buf(), Some(temp))
                }
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (role, base, container) in base_templates {
                let base = base.as_deref().map(read_template).transpose()?;
                let mut pod = base.unwrap_or_default();
                let which = container
                    .as_deref()
                    .map_or(SparkContainer::TemplateFirst, SparkContainer::Named);
                init.inject(&mut pod, Some(role), which)?;
                let yaml = serde_norway::to_string(&pod)?;
                let path = dir.join(format!("{}-pod-template.yaml", role.as_str()));
                std::fs::write(&path, &yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                set_conf(
                    &mut args,
                    &format!("spark.kubernetes.{}.podTemplateFile", role.as_str()),
                    &path.display().to_string(),
                );
                templates.push((role, path, yaml));
            }
            // With a dry run the directory is the user's to keep.
            keep = match temp {
                Some(temp) if options.dry_run => {
                    let _ = temp.keep();
                    None
                }
                other => other,
            };
            Some(secret)
        }
        Inject::Webhook => {
            ask_webhook(&mut args, &init, &base_templates);
            if init.args.timeout.is_some() && !options.quiet {
                eprintln!(
                    "sparkstage: warning: with --inject webhook the server's webhook writes the \
                     init container; its deadline is the server's default, not --init-timeout"
                );
            }
            // Pods fetch with their own token when the server can check it.
            let info = client.info().await?;
            (!info.pod_identity).then_some(secret)
        }
    };

    let mut command = vec![spark_submit.clone()];
    command.extend(args.to_args());
    let resolved = match stored.len() {
        0 => String::new(),
        n => format!(" ({n} resolved from --packages)"),
    };
    let summary = format!(
        "sparkstage: bundle {bundle}: {} files{resolved}, {} uploaded ({}), {} hashed, in {:.2} s",
        staged.entries.len(),
        staged.uploaded_files,
        format_size(staged.uploaded_bytes),
        staged.hashed,
        staged.elapsed.as_secs_f64()
    );
    Ok(Some(Prepared {
        command,
        templates,
        secret: match secret {
            Some(secret) => {
                let yaml = serde_norway::to_string(&secret)?;
                Some((secret, yaml))
            }
            None => None,
        },
        _templates_dir: keep,
        summary,
        bundle,
        namespace,
    }))
}

/// Asks the server's admission webhook for the init container in the driver's and the
/// executors' pods: its label, and annotations with the bundle, the directories when not the
/// default, the remote sources, and Spark's container when a template names it.
fn ask_webhook(
    args: &mut SubmitArgs,
    init: &Injection,
    templates: &[(Role, Option<String>, Option<String>); 2],
) {
    use sparkstage_injection::webhook::{INJECT_LABEL, annotations};
    for (role, _, container) in templates {
        let role = role.as_str();
        set_conf(
            args,
            &format!("spark.kubernetes.{role}.label.{INJECT_LABEL}"),
            "true",
        );
        for (key, value) in annotations(&init.args, container.as_deref()) {
            set_conf(
                args,
                &format!("spark.kubernetes.{role}.annotation.{key}"),
                &value,
            );
        }
    }
}

/// A word as a POSIX shell reads it back.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `command` with the terminal attached; its exit code (128 + signal when killed).
pub async fn run(command: &[String]) -> Result<i32> {
    let (program, args) = command.split_first().context("empty command")?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs spark-submit and, meanwhile, gives the bundle's Secret to the driver pod it creates
/// ([`crate::secret::adopt`]), waiting at most `within` for the pod (and once more when
/// spark-submit has exited). A Secret left without an owner is said, not an error: spark-submit's
/// exit status is the command's.
pub async fn run_adopting(
    command: &[String],
    client: kube::Client,
    namespace: &str,
    bundle: &str,
    within: Duration,
    quiet: bool,
) -> Result<i32> {
    let (program, args) = command.split_first().context("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let adopting = crate::secret::adopt(client.clone(), namespace, bundle, within, ADOPT_POLL);
    let mut adopting = std::pin::pin!(adopting);
    let (adopted, status) = tokio::select! {
        adopted = &mut adopting => (Some(adopted), child.wait().await?),
        status = child.wait() => (None, status?),
    };
    let adopted = match adopted {
        Some(adopted) => adopted,
        // spark-submit is done (cluster mode without waiting, or it failed): one last look.
        None => match crate::secret::driver_pod(client.clone(), namespace, bundle).await {
            Ok(Some(driver)) => crate::secret::set_owner(
                client,
                namespace,
                &crate::secret::secret_name(bundle),
                driver.owner(),
            )
            .await
            .map(|()| Some(driver)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        },
    };
    let secret = format!("{namespace}/{}", crate::secret::secret_name(bundle));
    match adopted {
        Ok(Some(driver)) if !quiet => eprintln!(
            "sparkstage: Secret {secret} now belongs to the driver pod {} (deleted with it)",
            driver.pod
        ),
        Ok(Some(_)) => {}
        Ok(None) => eprintln!(
            "sparkstage: warning: no driver pod of bundle {bundle} appeared in {namespace}, so \
             Secret {secret} has no owner and stays: delete it when the application is done"
        ),
        Err(e) => eprintln!(
            "sparkstage: warning: Secret {secret} has no owner and stays ({e:#}); the submitter \
             needs get/list/watch on pods and patch on secrets"
        ),
    }
    Ok(exit_code(status))
}

/// How often the driver pod is looked for.
const ADOPT_POLL: Duration = Duration::from_secs(1);

/// The dry run's report: the command, the templates and the Secret.
pub fn report(prepared: &Prepared) -> String {
    let mut out = String::from("# spark-submit command\n");
    out.push_str(
        &prepared
            .command
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    );
    out.push('\n');
    for (role, path, yaml) in &prepared.templates {
        out.push_str(&format!(
            "---\n# {} pod template: {}\n",
            role.as_str(),
            path.display()
        ));
        out.push_str(yaml);
    }
    if let Some((_, yaml)) = &prepared.secret {
        out.push_str("---\n# Secret (kubectl apply -f -)\n");
        out.push_str(yaml);
    }
    out
}

/// The path of a template in a prepared command.
pub fn template_path(prepared: &Prepared, role: Role) -> Option<&Path> {
    prepared
        .templates
        .iter()
        .find(|(r, _, _)| *r == role)
        .map(|(_, p, _)| p.as_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--conf"), "--conf");
        assert_eq!(shell_quote("spark.x=a b"), "'spark.x=a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
