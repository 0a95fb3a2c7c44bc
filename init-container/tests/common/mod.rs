//! What the `sparkstage-init` process tests share: running the binary with a clean environment,
//! temporary target directories, and reading what a run left behind.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::Result;
use tempfile::TempDir;

/// Runs `sparkstage-init ARGS` with `env` and none of the caller's `SPARKSTAGE_*` or Hadoop
/// variables.
pub async fn init<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sparkstage-init"));
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("SPARKSTAGE_") || name_str.starts_with("HADOOP_") {
            command.env_remove(&name);
        }
    }
    command.envs(env.iter().copied());
    Ok(command.output().await?)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Names in `dir` (hidden ones too), sorted; empty when `dir` does not exist.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A pod's two download directories (not created: the run creates them) in a temporary root.
pub struct Dirs {
    pub root: TempDir,
    pub jars: PathBuf,
    pub files: PathBuf,
}

impl Dirs {
    pub fn new() -> Result<Self> {
        let root = tempfile::tempdir()?;
        Ok(Self {
            jars: root.path().join("jars"),
            files: root.path().join("files"),
            root,
        })
    }

    /// Writes `secret` (with a newline, as a mounted Secret may have) to `root/name`.
    pub fn secret_file(&self, name: &str, secret: &str) -> Result<PathBuf> {
        let path = self.root.path().join(name);
        std::fs::write(&path, format!("{secret}\n"))?;
        Ok(path)
    }

    pub fn args(&self) -> Vec<String> {
        vec![
            "--jars-dir".into(),
            self.jars.display().to_string(),
            "--files-dir".into(),
            self.files.display().to_string(),
        ]
    }

    /// [`Dirs::args`] plus the flags that name a staged bundle, with its token in a file.
    pub fn bundle_args(&self, server: &str, id: &str, token: &str) -> Result<Vec<String>> {
        let token_file = self.secret_file("bundle.token", token)?;
        let mut args = self.args();
        args.extend([
            "--server".into(),
            server.into(),
            "--bundle".into(),
            id.into(),
            "--token-file".into(),
            token_file.display().to_string(),
        ]);
        Ok(args)
    }
}

/// A response body that sends the first half of `data`, then breaks off with an error (the
/// connection is cut), as a flaky origin does. The pause lets the first half reach the client
/// before the break.
pub fn half_then_broken(data: &[u8]) -> axum::body::Body {
    use futures::StreamExt;
    let half = bytes::Bytes::copy_from_slice(&data[..data.len() / 2]);
    let stream = futures::stream::iter([
        Ok(half),
        Err(std::io::Error::other("connection cut by the test")),
    ])
    .then(|item| async move {
        if item.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        item
    });
    axum::body::Body::from_stream(stream)
}
