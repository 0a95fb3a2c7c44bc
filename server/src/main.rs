//! `sparkstage-server`: see the crate documentation of `sparkstage_server` and the README.

use anyhow::Context;
use clap::Parser;
use sparkstage_server::config::{Config, LogFormat};
use sparkstage_server::lifecycle::kube_owners::{KubeOwners, WatchSpec};
use sparkstage_server::pod_identity::KubeTokenReviewer;
use sparkstage_server::storage::{self, Backend, OpenOptions};
use sparkstage_server::webhook;
use sparkstage_server::{AppState, Injected, Settings, app, connections, ensure_layout};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sparkstage-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SPARKSTAGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let upload_token = config.read_upload_token()?;
    let maven_credentials = config.read_maven_credentials()?;
    let loopback = config.listen.ip().is_loopback();
    match (&upload_token, loopback, config.insecure) {
        (Some(_), _, _) => tracing::info!("uploads need the upload token"),
        (None, true, _) => tracing::warn!(
            "no upload token configured: accepting unauthenticated uploads because the server \
             listens on loopback ({}) only; set --upload-token-file before exposing it",
            config.listen
        ),
        (None, false, true) => tracing::warn!(
            "no upload token configured and --insecure given: anyone who reaches {} can upload",
            config.listen
        ),
        (None, false, false) => anyhow::bail!(
            "--listen {} is not a loopback address and no upload token is configured; set \
             --upload-token-file (or SPARKSTAGE_UPLOAD_TOKEN_FILE), or pass --insecure to accept \
             unauthenticated uploads",
            config.listen
        ),
    }

    let storage = storage::open(
        &config.storage,
        &OpenOptions {
            config: Vec::new(),
            fsync: !config.no_fsync,
        },
    )?;
    if let Backend::Local { root } = &storage.backend {
        let root = root.clone();
        let removed = tokio::task::spawn_blocking(move || storage::remove_partial_writes(&root))
            .await?
            .context("cleaning up interrupted writes")?;
        if removed > 0 {
            tracing::info!(removed, "removed leftovers of interrupted writes");
        }
    }
    ensure_layout(storage.store.as_ref())
        .await
        .with_context(|| format!("storage {} is not usable", storage.display))?;

    let mut settings = Settings::from_config(&config);
    settings.maven.credentials = maven_credentials;
    let mut injected = Injected::default();
    let owner_tracking = if config.kubernetes {
        let client = kube::Client::try_default()
            .await
            .context("--kubernetes: no in-cluster configuration and no usable kubeconfig")?;
        injected.token_reviewer = Some(std::sync::Arc::new(KubeTokenReviewer::new(client.clone())));
        tracing::info!(
            "pod identity is on: pods may fetch bundles with their ServiceAccount token"
        );
        let spec = WatchSpec {
            selector: "spark-role".to_owned(),
            bundle_label: sparkstage_api::bundles::BUNDLE_LABEL.to_owned(),
        };
        let (owners, task) =
            KubeOwners::start(client, spec, std::sync::Arc::clone(&injected.clock));
        injected.owners = owners;
        Some(task)
    } else {
        tracing::info!("owner tracking is off (--kubernetes): bundles live until their ttl");
        None
    };
    let state = AppState::with(&storage, settings, upload_token.as_deref(), injected);
    let lifecycle = std::sync::Arc::clone(&state.lifecycle).spawn();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let webhook_task = match config.webhook_listen {
        Some(address) => {
            let cert = std::sync::Arc::new(webhook::tls::ReloadingCert::new(
                config.webhook_cert.clone(),
                config.webhook_key.clone(),
            )?);
            let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config()?);
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("--webhook-listen: cannot listen on {address}"))?;
            if config.pod_server_url.is_none() {
                tracing::warn!(
                    "--pod-server-url is not set: the webhook denies pods that ask for a bundle"
                );
            }
            tracing::info!(address = %listener.local_addr()?, "admission webhook listening (TLS)");
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(connections::serve_tls(
                listener,
                webhook::router(state.clone()),
                connections::ConnectionLimits {
                    max_connections: webhook::MAX_CONNECTIONS,
                    ..config.connection_limits()
                },
                Some(acceptor),
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            )))
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, storage = %storage.display, "sparkstage-server listening");

    let (shutdown_started_tx, shutdown_started_rx) = tokio::sync::oneshot::channel::<()>();
    let server = connections::serve(
        listener,
        app(state),
        config.connection_limits(),
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
            let _ = shutdown_started_tx.send(());
        },
    );
    let drain_limit = config.shutdown_timeout;
    let serving = tokio::spawn(server);
    let forced = async move {
        if shutdown_started_rx.await.is_ok() {
            tokio::time::sleep(drain_limit).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = serving => result?.context("server failed")?,
        () = forced => tracing::warn!(
            "in-flight requests did not finish within {}; exiting",
            humantime::format_duration(drain_limit)
        ),
    }
    lifecycle.abort();
    if let Some(task) = webhook_task {
        task.abort();
    }
    if let Some(task) = owner_tracking {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
