//! `sparkstage`: the submit hook and the operator's commands. See the library documentation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sparkstage::progress::Progress;
use sparkstage::resolve;
use sparkstage::stage::{BundleSpec, DigestCache, ServerClient, StageFile, stage};
use sparkstage::submit::{self, SubmitOptions};
use sparkstage_api::bundles::EntryKind;
use sparkstage_api::size::format_size;
use sparkstage_maven::credentials::Credentials;

#[derive(Debug, Parser)]
#[command(
    name = "sparkstage",
    version,
    about = "Stages Spark applications' dependencies on sparkstage-server"
)]
struct Cli {
    /// The staging server's URL as this machine reaches it (the fork's
    /// spark.kubernetes.resourceStagingServer.uri is accepted too).
    #[arg(long, global = true, env = "SPARKSTAGE_SERVER")]
    server: Option<String>,
    /// A file holding the server's upload token (else SPARKSTAGE_UPLOAD_TOKEN).
    #[arg(long, global = true, env = "SPARKSTAGE_UPLOAD_TOKEN_FILE")]
    upload_token_file: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stage the local files a spark-submit command names, add the init container, and run it:
    /// `sparkstage submit [OPTIONS] -- spark-submit ARGS...`.
    Submit(SubmitArgs),
    /// Stage a spark-operator SparkApplication's local dependencies and packages, rewrite it to
    /// the pod paths, add the init container, and apply it (server-side apply): `sparkstage
    /// apply -f app.yaml`.
    Apply(ApplyArgs),
    /// Stage files as a bundle and print its id (the token goes to --token-out).
    Upload {
        /// Files; `.jar` files are jars, `.py` and `.zip` py-files, others plain files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the bundle token to this file (mode 0600); without it the token is not shown.
        #[arg(long)]
        token_out: Option<PathBuf>,
        /// How long the bundle lives (the server's default when absent).
        #[arg(long)]
        ttl: Option<String>,
        /// The namespace of the pods that will fetch it: with owner tracking the bundle lives
        /// while pods of it (labelled sparkstage.io/bundle=<id>) exist there, and with pod
        /// identity only that namespace's pods may fetch it with their own token.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Resolve Maven coordinates as `spark-submit --packages` (or Maven) would, and print the
    /// jars, one group:artifact:version[:classifier] per line. With --server, the server
    /// resolves and keeps the jars; without, this process does.
    Resolve {
        /// Coordinates: group:artifact:version or group:artifact:extension:classifier:version
        /// (comma-separated or several arguments).
        #[arg(required = true, value_delimiter = ',')]
        coordinates: Vec<String>,
        /// Repositories asked after the default ones (as spark-submit --repositories).
        #[arg(long, value_delimiter = ',')]
        repositories: Vec<String>,
        /// group:artifact to leave out everywhere (as spark-submit --exclude-packages).
        #[arg(long, value_delimiter = ',')]
        exclude_packages: Vec<String>,
        /// spark: what spark-submit --packages resolves (Ivy); maven: what Maven resolves.
        #[arg(long, default_value = "spark")]
        mode: String,
        /// Print the jars as a tree, each under what pulled it in.
        #[arg(long, conflicts_with = "format")]
        tree: bool,
        /// coordinates: group:artifact:version[:classifier]; files: the jar names Spark gives
        /// them (group_artifact-version.jar); json: the whole answer, digests and sizes too.
        #[arg(long, value_parser = ["coordinates", "files", "json"])]
        format: Option<String>,
        /// The default repositories of an in-process resolution (comma-separated in the
        /// environment).
        #[arg(long = "maven-repository", env = "SPARKSTAGE_MAVEN_REPOSITORIES", value_delimiter = ',',
              default_value = sparkstage_maven::resolver::MAVEN_CENTRAL)]
        maven_repositories: Vec<String>,
        /// `Authorization` header values for repositories, one `URL-prefix VALUE` per line
        /// (`https://nexus.internal/repository/ Bearer ...`), for an in-process resolution.
        #[arg(long, env = "SPARKSTAGE_MAVEN_CREDENTIALS_FILE")]
        maven_credentials_file: Option<PathBuf>,
        /// The local cache of an in-process resolution [default: ~/.cache/sparkstage/maven].
        #[arg(long, env = "SPARKSTAGE_MAVEN_CACHE")]
        cache_dir: Option<PathBuf>,
        /// Resolve from the local cache only (in-process).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        limits: sparkstage_maven::limits::LimitsArgs,
    },
    /// List the server's bundles and where each is in its life (needs the upload token when
    /// the server has one).
    Ls,
    /// Run one sweep of bundles and one garbage collection of blobs on the server now, and
    /// print what they deleted (with the upload token).
    Gc {
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete bundles by id (with the upload token).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ApplyInject {
    /// Labels and annotations for the server's admission webhook.
    Webhook,
    /// The init container, volumes and mounts written into the SparkApplication.
    Spec,
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// The YAML file (several documents; `-` for standard input). Relative paths in it are
    /// relative to its directory.
    #[arg(short = 'f', long)]
    file: String,
    #[arg(long, value_enum, default_value = "webhook")]
    inject: ApplyInject,
    /// Print the rewritten documents (and the Secret, when one is needed) instead of applying.
    #[arg(long)]
    dry_run: bool,
    /// The namespace of documents that name none [default: the kubeconfig's, else default].
    #[arg(short = 'n', long, env = "SPARKSTAGE_NAMESPACE")]
    namespace: Option<String>,
    /// Take over fields another field manager owns (kubectl apply's --force-conflicts).
    #[arg(long)]
    force_conflicts: bool,
    #[command(flatten)]
    pods: PodOptions,
}

/// How the pods reach the server, where their files go, how long the bundle lives and who
/// fetches remote files: `submit`'s and `apply`'s.
#[derive(Debug, clap::Args)]
struct PodOptions {
    /// The server's URL as the pods reach it [default: --server] (the fork's
    /// spark.kubernetes.resourceStagingServer.internal.uri).
    #[arg(long, env = "SPARKSTAGE_INTERNAL_SERVER")]
    internal_server: Option<String>,
    /// The init container's image.
    #[arg(long, env = "SPARKSTAGE_INIT_IMAGE", default_value = sparkstage_injection::pod::DEFAULT_INIT_IMAGE)]
    init_image: String,
    /// The init container's imagePullPolicy.
    #[arg(long, env = "SPARKSTAGE_INIT_PULL_POLICY")]
    init_pull_policy: Option<String>,
    /// Where jars go in the pods [default: /var/spark-data/spark-jars] (the fork's
    /// spark.kubernetes.mountdependencies.jarsDownloadDir).
    #[arg(long, env = "SPARKSTAGE_JARS_DIR")]
    jars_dir: Option<String>,
    /// Where other files go in the pods [default: /var/spark-data/spark-files] (the fork's
    /// spark.kubernetes.mountdependencies.filesDownloadDir).
    #[arg(long, env = "SPARKSTAGE_FILES_DIR")]
    files_dir: Option<String>,
    /// How long the bundle lives [default: the server's].
    #[arg(long, env = "SPARKSTAGE_TTL")]
    ttl: Option<String>,
    /// Have sparkstage fetch remote dependencies (http(s), s3/s3a, gs, az, hdfs, webhdfs)
    /// instead of Spark: the server once for the cluster when it can (--remote), else the init
    /// container, with its retries, verification and node cache.
    #[arg(long, env = "SPARKSTAGE_FETCH_REMOTE")]
    fetch_remote: bool,
    /// Who fetches --fetch-remote's files: the server once for the cluster, or each pod
    /// [default: the server when it can].
    #[arg(long, env = "SPARKSTAGE_REMOTE", value_enum, default_value = "auto")]
    remote: submit::RemoteFetch,
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// The namespace of the Secret and the pods [default: spark.kubernetes.namespace, else default].
    #[arg(long, env = "SPARKSTAGE_NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    pods: PodOptions,
    /// The init container's deadline, such as 5m (the fork's mountdependencies.mountTimeout).
    #[arg(long, env = "SPARKSTAGE_INIT_TIMEOUT")]
    init_timeout: Option<String>,
    /// How the init container gets into the pods: pod templates and a Secret (`templates`), or
    /// labels and annotations for the server's admission webhook (`webhook`; no Secret when the
    /// server checks the pods' own tokens).
    #[arg(long, env = "SPARKSTAGE_INJECT", value_enum, default_value_t = submit::Inject::Templates)]
    inject: submit::Inject,
    /// Where to write the pod templates [default: a temporary directory].
    #[arg(long, env = "SPARKSTAGE_TEMPLATES_DIR")]
    templates_dir: Option<PathBuf>,
    /// Uploads at the same time.
    #[arg(long, default_value_t = 4)]
    parallel_uploads: usize,
    /// How long to wait for the driver pod, to make it the owner of the token Secret (which
    /// Kubernetes then deletes with it).
    #[arg(long, env = "SPARKSTAGE_OWNER_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    owner_timeout: std::time::Duration,
    /// Stage, then print the spark-submit command, the pod templates and the Secret instead of
    /// creating the Secret and running spark-submit. The Secret holds the bundle token.
    #[arg(long, env = "SPARKSTAGE_DRY_RUN")]
    dry_run: bool,
    /// spark-submit and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn upload_token(cli: &Cli) -> Result<Option<String>> {
    if let Some(path) = &cli.upload_token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the upload token file {}", path.display()))?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(std::env::var("SPARKSTAGE_UPLOAD_TOKEN")
        .ok()
        .filter(|t| !t.is_empty()))
}

fn server_client(cli: &Cli) -> Result<ServerClient> {
    let server = cli
        .server
        .as_deref()
        .context("give the staging server with --server (SPARKSTAGE_SERVER)")?;
    ServerClient::new(server, upload_token(cli)?)
}

fn kind_of(path: &std::path::Path) -> EntryKind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jar") => EntryKind::Jar,
        Some("py" | "zip" | "egg") => EntryKind::Pyfile,
        _ => EntryKind::File,
    }
}

async fn main_inner(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Submit(s) => {
            let options = SubmitOptions {
                server: cli.server.clone(),
                internal_server: s.pods.internal_server.clone(),
                upload_token: upload_token(&cli)?,
                namespace: s.namespace.clone(),
                init_image: s.pods.init_image.clone(),
                init_pull_policy: s.pods.init_pull_policy.clone(),
                jars_dir: s.pods.jars_dir.clone(),
                files_dir: s.pods.files_dir.clone(),
                init_timeout: s.init_timeout.clone(),
                ttl: s.pods.ttl.clone(),
                templates_dir: s.templates_dir.clone(),
                parallel_uploads: s.parallel_uploads,
                fetch_remote: s.pods.fetch_remote,
                remote: s.pods.remote,
                dry_run: s.dry_run,
                quiet: cli.quiet,
                inject: s.inject,
            };
            let Some(prepared) = submit::prepare(&options, &s.command).await? else {
                if !cli.quiet {
                    eprintln!("sparkstage: nothing local to stage; running spark-submit as given");
                }
                if s.dry_run {
                    println!(
                        "# spark-submit command\n{}",
                        s.command
                            .iter()
                            .map(|w| submit::shell_quote(w))
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    return Ok(0);
                }
                return submit::run(&s.command).await;
            };
            if !cli.quiet {
                eprintln!("{}", prepared.summary);
            }
            if s.dry_run {
                print!("{}", submit::report(&prepared));
                return Ok(0);
            }
            let Some((secret, _)) = &prepared.secret else {
                // The pods fetch with their own token: nothing to create in the cluster.
                return submit::run(&prepared.command).await;
            };
            let client = kube::Client::try_default()
                .await
                .context("cannot configure the Kubernetes client (kubeconfig or in-cluster)")?;
            sparkstage::secret::create(client.clone(), secret).await?;
            submit::run_adopting(
                &prepared.command,
                client,
                &prepared.namespace,
                &prepared.bundle,
                s.owner_timeout,
                cli.quiet,
            )
            .await
        }
        Command::Apply(a) => {
            let text = if a.file == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&a.file)
                    .with_context(|| format!("cannot read {}", a.file))?
            };
            let base = match a.file.as_str() {
                "-" => std::env::current_dir()?,
                file => std::path::Path::new(file)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(std::env::current_dir, |p| Ok(p.to_path_buf()))?,
            };
            let options = SubmitOptions {
                server: cli.server.clone(),
                internal_server: a.pods.internal_server.clone(),
                upload_token: upload_token(&cli)?,
                init_image: a.pods.init_image.clone(),
                init_pull_policy: a.pods.init_pull_policy.clone(),
                jars_dir: a.pods.jars_dir.clone(),
                files_dir: a.pods.files_dir.clone(),
                ttl: a.pods.ttl.clone(),
                parallel_uploads: 4,
                fetch_remote: a.pods.fetch_remote,
                remote: a.pods.remote,
                dry_run: a.dry_run,
                quiet: cli.quiet,
                inject: match a.inject {
                    ApplyInject::Webhook => submit::Inject::Webhook,
                    ApplyInject::Spec => submit::Inject::Templates,
                },
                ..SubmitOptions::default()
            };
            let kube = match a.dry_run {
                true => None,
                false => Some(kube::Client::try_default().await.context(
                    "cannot configure the Kubernetes client (kubeconfig or in-cluster)",
                )?),
            };
            let options = SubmitOptions {
                namespace: a
                    .namespace
                    .clone()
                    .or_else(|| kube.as_ref().map(|k| k.default_namespace().to_owned())),
                ..options
            };
            let mut documents = sparkstage::apply::read_documents(&text)?;
            let texts = sparkstage::apply::document_texts(&text, &documents);
            let target = match kube {
                None => sparkstage::apply::Target::Print,
                Some(client) => sparkstage::apply::Target::Apply {
                    client,
                    force: a.force_conflicts,
                },
            };
            sparkstage::apply::run(
                &mut documents,
                &texts,
                &base,
                &options,
                &server_client(&cli)?,
                target,
            )
            .await?;
            Ok(0)
        }
        Command::Upload {
            files,
            token_out,
            ttl,
            namespace,
        } => {
            let client = server_client(&cli)?;
            let mut stage_files = Vec::new();
            for path in files {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{} has no usable file name", path.display()))?
                    .to_owned();
                stage_files.push(StageFile {
                    path: std::fs::canonicalize(path)
                        .with_context(|| format!("{}: no such file", path.display()))?,
                    name,
                    kind: kind_of(path),
                });
            }
            let mut cache = DigestCache::load(DigestCache::default_path());
            let staged = stage(
                &client,
                &stage_files,
                BundleSpec {
                    ttl: ttl.clone(),
                    owner: namespace.as_ref().map(|ns| sparkstage_api::bundles::Owner {
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    }),
                    ..BundleSpec::default()
                },
                &mut cache,
                4,
                &Progress::new(cli.quiet),
            )
            .await?;
            if let Some(path) = token_out {
                write_private(path, &staged.bundle.token)?;
            }
            if !cli.quiet {
                eprintln!(
                    "sparkstage: {} files, {} uploaded ({}), expires {}",
                    staged.entries.len(),
                    staged.uploaded_files,
                    format_size(staged.uploaded_bytes),
                    staged.bundle.expires_at
                );
            }
            println!("{}", staged.bundle.id);
            Ok(0)
        }
        Command::Resolve {
            coordinates,
            repositories,
            exclude_packages,
            mode,
            tree,
            format,
            maven_repositories,
            maven_credentials_file,
            cache_dir,
            offline,
            limits,
        } => {
            let request = sparkstage_api::resolve::ResolveRequest {
                coordinates: coordinates.clone(),
                repositories: repositories.clone(),
                exclusions: exclude_packages.clone(),
                mode: Some(mode.clone()),
            };
            let response = if cli.server.is_some() {
                resolve::resolve_on_server(&server_client(&cli)?, &request).await?
            } else {
                let cache = cache_dir.clone().unwrap_or_else(resolve::default_cache);
                let credentials = match maven_credentials_file {
                    Some(path) => Credentials::read(path).map_err(anyhow::Error::msg)?,
                    None => Credentials::default(),
                };
                let local = resolve::Local {
                    repositories: maven_repositories,
                    credentials: &credentials,
                    cache: &cache,
                    offline: *offline,
                    limits: limits.limits(),
                };
                resolve::resolve_locally(&request, &local).await?
            };
            match (format.as_deref(), tree) {
                (_, true) => print!("{}", resolve::render_tree(&response)),
                (Some("files"), _) => print!("{}", resolve::render_files(&response)),
                (Some("json"), _) => println!("{}", serde_json::to_string_pretty(&response)?),
                _ => print!("{}", resolve::render_list(&response)),
            }
            if !cli.quiet && !response.skipped.is_empty() {
                eprintln!(
                    "sparkstage: skipped (not jars): {}",
                    response.skipped.join(", ")
                );
            }
            Ok(0)
        }
        Command::Ls => {
            let bundles = server_client(&cli)?.list_bundles().await?;
            println!(
                "{:<32}  {:<20}  {:<14}  {:<32}  {:>7}  {:>10}  NAMESPACE",
                "ID", "CREATED", "STATE", "DELETED AT (REASON)", "ENTRIES", "SIZE"
            );
            for b in bundles {
                let state = match (b.state.pods, b.state.first_download_at) {
                    (Some(n), _) if n > 0 => format!("in use: {n} pods"),
                    (_, None) => "unused".to_owned(),
                    (Some(_), Some(_)) => "no pods".to_owned(),
                    (None, Some(_)) => "downloaded".to_owned(),
                };
                println!(
                    "{:<32}  {:<20}  {:<14}  {:<32}  {:>7}  {:>10}  {}",
                    b.id,
                    b.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    state,
                    format!(
                        "{} ({})",
                        b.state.deleted_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        b.state.reason
                    ),
                    b.entries,
                    format_size(b.size),
                    b.owner.and_then(|o| o.namespace).unwrap_or_default()
                );
            }
            Ok(0)
        }
        Command::Gc { dry_run } => {
            let report = server_client(&cli)?.gc(*dry_run).await?;
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for b in &report.bundles {
                println!("{verb} bundle {} ({})", b.id, b.reason);
            }
            for b in &report.blobs {
                println!("{verb} blob {} ({})", b.digest, format_size(b.size));
            }
            if report.blobs_deleted > report.blobs.len() as u64 {
                println!(
                    "... and {} more blobs",
                    report.blobs_deleted - report.blobs.len() as u64
                );
            }
            let cap = report
                .max_storage
                .map(|c| format!(" of {}", format_size(c)))
                .unwrap_or_default();
            println!(
                "sparkstage: {verb} {} bundles and {} blobs ({}); kept {} blobs; {} stored{cap}",
                report.bundles.len(),
                report.blobs_deleted,
                format_size(report.bytes_freed),
                report.blobs_kept,
                format_size(report.storage_used),
            );
            Ok(0)
        }
        Command::Rm { ids } => {
            let client = server_client(&cli)?;
            let mut failed = 0;
            for id in ids {
                match client.delete_bundle(id).await {
                    Ok(()) => {
                        if !cli.quiet {
                            eprintln!("sparkstage: deleted {id}");
                        }
                    }
                    Err(e) => {
                        eprintln!("sparkstage: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(i32::from(failed > 0))
        }
    }
}

/// Writes a secret to a new file readable by its owner only.
fn write_private(path: &std::path::Path, secret: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// The most of an error message the CLI prints.
const MESSAGE_CHARS: usize = 4000;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_inner(cli).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            // Errors carry text from outside (a repository's POM, a server's message): one
            // line, no control characters, bounded.
            eprintln!(
                "sparkstage: {}",
                sparkstage_api::shown::outside(&format!("{e:#}"), MESSAGE_CHARS)
            );
            ExitCode::from(1)
        }
    }
}
