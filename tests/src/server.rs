//! `sparkstage-server` as a real process on 127.0.0.1, for tests that kill, restart or run
//! several of it. Its log goes to a file the test can read.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sparkstage_api::Digest;
use tempfile::TempDir;

use crate::peers::{ChildGuard, free_port};

/// A built binary of this workspace: next to the `deps/` directory the test executable runs from.
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is not built; run `cargo build --bins` (the README's test command does)",
            path.display()
        );
    }
    Ok(path)
}

pub struct Server {
    // Field order: the process dies before its log directory is removed.
    pub process: ChildGuard,
    pub port: u16,
    /// The second port given to the server, where its arguments say `{port2}`.
    pub port2: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    /// Starts `sparkstage-server --listen 127.0.0.1:<free port> ARGS...` with `env` added to its
    /// environment, and waits until `/healthz` answers. In `args`, `{port}` is that port and
    /// `{port2}` another free one (for a second listener).
    pub async fn start(args: &[&str], env: &[(String, String)]) -> Result<Self> {
        let bin = binary("sparkstage-server")?;
        let dir = tempfile::Builder::new()
            .prefix("sparkstage-server-")
            .tempdir()?;
        let log = dir.path().join("server.log");
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port();
            let port2 = free_port();
            let log_file = std::fs::File::create(&log)?;
            let mut command = Command::new(&bin);
            command
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(args.iter().map(|a| {
                    a.replace("{port}", &port.to_string())
                        .replace("{port2}", &port2.to_string())
                }))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env_remove("SPARKSTAGE_STORAGE")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file);
            let mut process = ChildGuard::spawn("sparkstage-server", &mut command)?;
            match wait_ready(&mut process, port).await {
                Ok(()) => {
                    return Ok(Self {
                        process,
                        port,
                        port2,
                        log,
                        _dir: dir,
                    });
                }
                Err(e) => {
                    let _ = process.kill();
                    last_error = Some(e.context(std::fs::read_to_string(&log).unwrap_or_default()));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("server did not start")))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Uploads `files` (name, kind, bytes) and creates a bundle of them; returns (id, token).
    pub async fn stage(&self, files: &[(&str, &str, &[u8])]) -> Result<(String, String)> {
        let client = reqwest::Client::new();
        let mut entries = Vec::new();
        for (name, kind, data) in files {
            let digest = Digest::of(data);
            let status = client
                .put(format!("{}/v1/blobs/{digest}", self.url()))
                .body(data.to_vec())
                .send()
                .await?
                .status();
            ensure!(status.is_success(), "upload of {name}: {status}");
            entries.push(json!({"name": name, "digest": digest, "size": data.len(), "kind": kind}));
        }
        let answer: Value = client
            .post(format!("{}/v1/bundles", self.url()))
            .json(&json!({ "entries": entries }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok((
            answer["id"].as_str().context("no id")?.to_owned(),
            answer["token"].as_str().context("no token")?.to_owned(),
        ))
    }

    /// The manifest of bundle `id`, read with its `token` (as a pod reads it).
    pub async fn manifest(&self, id: &str, token: &str) -> Result<Value> {
        Ok(reqwest::Client::new()
            .get(format!("{}/v1/bundles/{id}", self.url()))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Blob bytes the server has sent so far (`sparkstage_blob_bytes_sent_total`).
    pub async fn bytes_sent(&self) -> Result<u64> {
        self.metric("sparkstage_blob_bytes_sent_total").await
    }

    /// The value of an unlabelled counter or gauge of `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<u64> {
        let text = reqwest::get(format!("{}/metrics", self.url()))
            .await?
            .text()
            .await?;
        let value: f64 = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .with_context(|| format!("no {name} in /metrics"))?
            .parse()?;
        Ok(value as u64)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn wait_ready(process: &mut ChildGuard, port: u16) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = process.try_wait()? {
            bail!("sparkstage-server exited during start: {status}");
        }
        let answer = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("sparkstage-server did not answer /healthz within 30 s")
}
