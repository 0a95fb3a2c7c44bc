//! Real storage peers for tests: S3 ([`Moto`]), GCS ([`FakeGcs`]) and Azure Blob ([`Azurite`]),
//! each run as a child process on `127.0.0.1` and a free port, plus the process helpers they are
//! built on ([`free_port`], [`ChildGuard`]).
//!
//! The binaries come from `scripts/test-deps.sh`, which installs them under `<repo>/.tools/`.
//! Each can be overridden with an environment variable holding its path:
//! `SPARKSTAGE_TEST_MOTO` (`moto_server`), `SPARKSTAGE_TEST_FAKE_GCS` (`fake-gcs-server`),
//! `SPARKSTAGE_TEST_AZURITE` (`azurite-blob`).
//!
//! Every fixture owns its child process and a [`TempDir`] (data and the peer's log). Dropping the
//! fixture kills the peer's whole process group, also while a test panics; a small watchdog
//! process also kills it if the test process itself dies without unwinding (SIGKILL, abort).
//!
//! Each fixture describes how to reach it three ways, all equivalent:
//! - [`ObjectStorePeer::object_store_options`]: config keys for `object_store::parse_url_opts`
//!   or the builders' `with_config`, together with [`ObjectStorePeer::url`] (`s3://bucket` ...);
//! - [`ObjectStorePeer::env`]: environment variables for a child process that uses the builders'
//!   `from_env()`;
//! - [`ObjectStorePeer::store`]: a ready `Box<dyn ObjectStore>`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use object_store::ObjectStore;
use sha2::Sha256;
use tempfile::TempDir;

mod gcs_xml;
use gcs_xml::GcsXmlShim;

/// How long a peer may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a peer is restarted on a new port when it exits during startup (the port we
/// picked may have been taken between [`free_port`] and the peer binding it).
const START_ATTEMPTS: usize = 5;

/// The workspace root (the parent of the `tests` crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A TCP port on 127.0.0.1 that was free a moment ago: binds port 0, reads the port the kernel
/// chose and closes the listener. Another process may take it before the caller binds it, so
/// callers retry on failure (the fixtures here do). Never returns the same port twice in one
/// process, so that concurrent tests cannot be handed the same port.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => panic!("cannot bind an ephemeral port on 127.0.0.1: {e}"),
        };
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Inodes of the TCP sockets listening on `port` (any local address), from `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == "0A"
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// A child process in its own process group that is killed, with all its children, on drop.
///
/// [`ChildGuard::spawn`] puts the child in a new process group (so that `kill` reaches the
/// grandchildren a wrapper script or `node` may start) and starts a watchdog, `sh`, reading a pipe
/// from this process: when this process dies without running destructors (SIGKILL, abort,
/// Ctrl-C), the pipe closes and the watchdog kills the group.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    reaped: Option<ExitStatus>,
    /// The group has been SIGKILLed after the leader exited: never signal its id again.
    group_done: bool,
}

impl ChildGuard {
    /// Spawns `cmd` in a new process group. Configure stdin/stdout/stderr on `cmd` first
    /// (they are inherited otherwise). `name` is used in error messages.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<Self> {
        let name = name.into();
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let pgid = child.id();
        // The watchdog ignores the signals a terminal or a harness sends to end a test run and
        // sits in its own process group, so that it outlives this process whichever way this
        // process dies. A failed watchdog only loses that guarantee; the child still works.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"trap '' INT TERM HUP QUIT; read _eof; kill -KILL "-$1" 2>/dev/null"#)
            .arg("sparkstage-watchdog")
            .arg(pgid.to_string())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(Self {
            name,
            child,
            watchdog,
            reaped: None,
            group_done: false,
        })
    }

    /// The name given to [`ChildGuard::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id, which is also its process group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether the child process itself (not one of its children) holds a socket listening
    /// on TCP `port`, per `/proc`. Tells our server apart from another process that got the
    /// same port.
    pub fn is_listening_on(&self, port: u16) -> bool {
        let inodes = listening_inodes(port);
        if inodes.is_empty() {
            return false;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.id())) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                inodes.iter().any(|i| target == format!("socket:[{i}]"))
            })
        })
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.reaped {
            return Ok(Some(status));
        }
        let status = self
            .child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))?;
        self.reaped = status;
        Ok(status)
    }

    /// Sends `signal` to the child's whole process group (not an error if it is already gone).
    pub fn signal_group(&mut self, signal: Signal) -> Result<()> {
        if self.reaped.is_some() {
            // The group id may have been reused by now.
            return Ok(());
        }
        match killpg(self.pgid(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(anyhow!(
                "killpg({}, {signal}) for {}: {e}",
                self.id(),
                self.name
            )),
        }
    }

    /// Sends SIGTERM to the process group and waits up to `timeout` for the child to exit, then
    /// SIGKILLs the group. Returns the child's exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.signal_group(Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                // Children of the leader that ignored SIGTERM still die.
                self.kill_leftovers();
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill()
    }

    /// SIGKILLs the process group and reaps the child. Returns the child's exit status.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        self.stop_watchdog();
        self.signal_group(Signal::SIGKILL)?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))?;
        self.reaped = Some(status);
        self.group_done = true;
        Ok(status)
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// After the leader exited, kills the members of its group that are left. The kernel does
    /// not hand out a process group's id as a new pid while the group has members, so this
    /// cannot hit an unrelated process unless the group emptied and the id was reused in
    /// between.
    fn kill_leftovers(&mut self) {
        if !self.group_done {
            let _ = killpg(self.pgid(), Signal::SIGKILL);
            self.group_done = true;
        }
        self.stop_watchdog();
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // Kill it first: closing its pipe would make it kill a group id that, once we reaped
            // our child, might belong to someone else.
            let _ = kill(Pid::from_raw(watchdog.id() as i32), Signal::SIGKILL);
            let _ = watchdog.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.kill();
        } else {
            // The leader exited on its own; what it started may still run.
            self.kill_leftovers();
        }
    }
}

/// A storage peer that `object_store` can talk to.
pub trait ObjectStorePeer {
    /// `http://127.0.0.1:PORT`, the peer's base URL.
    fn endpoint(&self) -> String;

    /// The `object_store` URL of a bucket/container: `s3://NAME`, `gs://NAME`, `az://NAME`.
    fn url(&self, bucket: &str) -> String;

    /// Config keys for `object_store::parse_url_opts(&url, ..)` or the backend builder's
    /// `with_config`, including the bucket/container name.
    fn object_store_options(&self, bucket: &str) -> Vec<(String, String)>;

    /// Environment variables for a child process whose builder uses `from_env()`. The
    /// bucket/container is not included: pass it in the URL.
    fn env(&self) -> Vec<(String, String)>;

    /// Creates a bucket (S3, GCS) or container (Azure).
    fn create_bucket(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// An `object_store` client for `bucket`, built with [`ObjectStorePeer::object_store_options`].
    fn store(&self, bucket: &str) -> Result<Box<dyn ObjectStore>> {
        let url = url::Url::parse(&self.url(bucket))?;
        let (store, _path) = object_store::parse_url_opts(&url, self.object_store_options(bucket))?;
        Ok(store)
    }
}

fn pairs<const N: usize>(kv: [(&str, String); N]) -> Vec<(String, String)> {
    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Finds a peer binary: `$env_var`, else the first of `tools_paths` (relative to
/// `<repo>/.tools`) that exists.
fn find_binary(what: &str, env_var: &str, tools_paths: &[&str]) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{env_var}={} does not exist; run `scripts/test-deps.sh` (and source .tools/env.sh) \
             or unset {env_var}",
            path.display()
        );
    }
    let tools = workspace_root().join(".tools");
    for rel in tools_paths {
        let path = tools.join(rel);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{what} not found ({env_var} is unset and it is not under {}): run `scripts/test-deps.sh`",
        tools.display()
    )
}

fn log_tail(path: &Path, max: u64) -> String {
    let mut out = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        out = String::from_utf8_lossy(&buf).into_owned();
    }
    out
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// Starts `bin args(port)` until it listens on the port and answers
/// `GET http://127.0.0.1:PORT{probe}` with any HTTP response. If it exits before that (port
/// taken, ...), retries on another port.
async fn start_peer(
    name: &str,
    bin: &Path,
    dir: &Path,
    args: impl Fn(u16) -> Vec<OsString>,
    probe: &str,
) -> Result<(ChildGuard, u16)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut failures = String::new();
    for attempt in 1..=START_ATTEMPTS {
        let port = free_port();
        let log_path = dir.join(format!("{name}.{attempt}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(args(port))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut guard = ChildGuard::spawn(name, &mut cmd)?;
        let url = format!("http://127.0.0.1:{port}{probe}");
        let started = Instant::now();
        loop {
            if let Some(status) = guard.try_wait()? {
                let _ = writeln!(
                    failures,
                    "attempt {attempt} on port {port}: {name} exited with {status}; log tail:\n{}",
                    log_tail(&log_path, 2000)
                );
                break;
            }
            // Only trust an answer once our own process holds the port: otherwise another
            // process that took the port in the meantime could be answering.
            let owned = !Path::new("/proc/net/tcp").exists() || guard.is_listening_on(port);
            if owned && client.get(&url).send().await.is_ok() {
                return Ok((guard, port));
            }
            if started.elapsed() > READY_TIMEOUT {
                drop(guard);
                bail!(
                    "{name} did not answer {url} within {READY_TIMEOUT:?}; log tail:\n{}",
                    log_tail(&log_path, 2000)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    bail!("{name} failed to start {START_ATTEMPTS} times:\n{failures}")
}

async fn expect_success(resp: reqwest::Response, what: &str) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: HTTP {status}: {body}")
}

// ------------------------------------------------------------------------------------------------
// S3: moto
// ------------------------------------------------------------------------------------------------

/// An S3 peer: `moto_server -H 127.0.0.1 -p PORT` (moto, in memory, path-style addressing).
///
/// Moto does not check request signatures or checksums and keeps all objects in memory.
#[derive(Debug)]
pub struct Moto {
    // Field order matters: the process dies before its directory is removed.
    child: ChildGuard,
    port: u16,
    dir: TempDir,
    http: reqwest::Client,
}

impl Moto {
    /// Access key id the options and env use (moto accepts any).
    pub const ACCESS_KEY_ID: &'static str = "sparkstage-test";
    /// Secret access key the options and env use (moto accepts any).
    pub const SECRET_ACCESS_KEY: &'static str = "sparkstage-test-secret";
    /// Region the options and env use.
    pub const REGION: &'static str = "us-east-1";

    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> Result<Self> {
        let bin = find_binary(
            "moto_server",
            "SPARKSTAGE_TEST_MOTO",
            &["bin/moto_server", "venv/bin/moto_server"],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("sparkstage-moto-")
            .tempdir()?;
        let (child, port) = start_peer(
            "moto",
            &bin,
            dir.path(),
            |port| {
                vec![
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string().into(),
                ]
            },
            "/moto-api/",
        )
        .await?;
        Ok(Self {
            child,
            port,
            dir,
            http: http_client()?,
        })
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fixture's temporary directory (holds moto's log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process, e.g. to kill it in the middle of a test.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }
}

impl ObjectStorePeer for Moto {
    /// `http://127.0.0.1:PORT`.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}")
    }

    /// Options for `AmazonS3Builder::with_config` / `parse_url_opts("s3://BUCKET")`.
    ///
    /// `PutMode::Create`/`Update` work with object_store's default `aws_conditional_put=etag`
    /// (`If-None-Match: *` / `If-Match`). `aws_copy_if_not_exists=multipart` is included so
    /// that `copy_if_not_exists` works as on the other peers (moto, like S3 since 2024, honours
    /// `If-None-Match` on `CompleteMultipartUpload`); without it object_store refuses
    /// `copy_if_not_exists` on S3.
    fn object_store_options(&self, bucket: &str) -> Vec<(String, String)> {
        pairs([
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".into()),
            ("aws_region", Self::REGION.into()),
            ("aws_access_key_id", Self::ACCESS_KEY_ID.into()),
            ("aws_secret_access_key", Self::SECRET_ACCESS_KEY.into()),
            ("aws_copy_if_not_exists", "multipart".into()),
            ("aws_bucket", bucket.into()),
        ])
    }

    /// Environment for `AmazonS3Builder::from_env()` (and the AWS CLI/SDKs, which read
    /// `AWS_ENDPOINT_URL`).
    fn env(&self) -> Vec<(String, String)> {
        pairs([
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", Self::REGION.into()),
            ("AWS_DEFAULT_REGION", Self::REGION.into()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_ACCESS_KEY.into()),
            ("AWS_COPY_IF_NOT_EXISTS", "multipart".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ])
    }

    /// Creates bucket `name` with an unsigned `PUT /name` (moto does not check signatures).
    async fn create_bucket(&self, name: &str) -> Result<()> {
        let resp = self
            .http
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await?;
        expect_success(resp, &format!("moto: creating bucket {name}")).await
    }
}

// ------------------------------------------------------------------------------------------------
// GCS: fake-gcs-server
// ------------------------------------------------------------------------------------------------

/// A GCS peer: `fake-gcs-server -scheme http -host 127.0.0.1 -port P -backend filesystem
/// -filesystem-root DIR -public-host 127.0.0.1:P`, behind a small in-process adapter that
/// translates the XML API writes object_store uses (object PUT, copy, multipart upload), which
/// fake-gcs-server does not implement, into its JSON API. [`FakeGcs::endpoint`] is the
/// adapter; [`FakeGcs::server_endpoint`] is fake-gcs-server itself. See `gcs_xml.rs`.
///
/// Bucket names must be 3-63 characters (fake-gcs-server checks GCS's naming rules).
#[derive(Debug)]
pub struct FakeGcs {
    shim: GcsXmlShim,
    child: ChildGuard,
    port: u16,
    dir: TempDir,
    http: reqwest::Client,
}

impl FakeGcs {
    /// Starts fake-gcs-server on a free port with a filesystem backend in a temporary directory.
    pub async fn start() -> Result<Self> {
        let bin = find_binary(
            "fake-gcs-server",
            "SPARKSTAGE_TEST_FAKE_GCS",
            &["bin/fake-gcs-server"],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("sparkstage-fake-gcs-")
            .tempdir()?;
        let root = dir.path().join("data");
        let (child, port) = start_peer(
            "fake-gcs-server",
            &bin,
            dir.path(),
            |port| {
                let mut args: Vec<OsString> = [
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    &port.to_string(),
                    "-public-host",
                    &format!("127.0.0.1:{port}"),
                    "-external-url",
                    &format!("http://127.0.0.1:{port}"),
                    "-backend",
                    "filesystem",
                    "-log-level",
                    "warn",
                ]
                .into_iter()
                .map(OsString::from)
                .collect();
                args.push("-filesystem-root".into());
                args.push(root.clone().into_os_string());
                args
            },
            "/storage/v1/b",
        )
        .await?;
        let shim = GcsXmlShim::start(port, dir.path().join("shim-spool"))?;
        Ok(Self {
            shim,
            child,
            port,
            dir,
            http: http_client()?,
        })
    }

    /// The port of the adapter in front of fake-gcs-server (what [`FakeGcs::endpoint`] uses).
    pub fn port(&self) -> u16 {
        self.shim.port()
    }

    /// The port fake-gcs-server itself listens on.
    pub fn server_port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` of fake-gcs-server itself, without the XML adapter.
    pub fn server_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The fixture's temporary directory (`data/` is the filesystem backend's root).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process, e.g. to kill it in the middle of a test.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// The service account key JSON that points object_store at this server without OAuth
    /// (as object_store's own CI does with fake-gcs-server).
    pub fn service_account_key(&self) -> String {
        serde_json::json!({
            "gcs_base_url": self.endpoint(),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        })
        .to_string()
    }
}

impl ObjectStorePeer for FakeGcs {
    /// `http://127.0.0.1:PORT` of the adapter: use this as the GCS base URL.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.shim.port())
    }

    fn url(&self, bucket: &str) -> String {
        format!("gs://{bucket}")
    }

    /// Options for `GoogleCloudStorageBuilder::with_config` / `parse_url_opts("gs://BUCKET")`.
    fn object_store_options(&self, bucket: &str) -> Vec<(String, String)> {
        pairs([
            ("google_service_account_key", self.service_account_key()),
            ("google_allow_http", "true".into()),
            ("google_bucket", bucket.into()),
        ])
    }

    /// Environment for `GoogleCloudStorageBuilder::from_env()`. Make sure the child does not
    /// also inherit `GOOGLE_SERVICE_ACCOUNT`/`SERVICE_ACCOUNT` (a path and a key are an error).
    fn env(&self) -> Vec<(String, String)> {
        pairs([
            ("GOOGLE_SERVICE_ACCOUNT_KEY", self.service_account_key()),
            ("GOOGLE_ALLOW_HTTP", "true".into()),
        ])
    }

    /// Creates bucket `name` through the JSON API (`POST /storage/v1/b`).
    async fn create_bucket(&self, name: &str) -> Result<()> {
        let resp = self
            .http
            .post(format!(
                "{}/storage/v1/b?project=sparkstage-test",
                self.endpoint()
            ))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        expect_success(resp, &format!("fake-gcs-server: creating bucket {name}")).await
    }
}

// ------------------------------------------------------------------------------------------------
// Azure Blob: azurite
// ------------------------------------------------------------------------------------------------

/// An Azure Blob peer: `azurite-blob --blobHost 127.0.0.1 --blobPort P --location DIR
/// --skipApiVersionCheck --disableTelemetry`, account `devstoreaccount1` (path-style URLs:
/// `http://127.0.0.1:P/devstoreaccount1/CONTAINER/BLOB`).
#[derive(Debug)]
pub struct Azurite {
    child: ChildGuard,
    port: u16,
    dir: TempDir,
    http: reqwest::Client,
}

impl Azurite {
    /// The emulator's well-known account.
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    /// The emulator's well-known account key (base64).
    pub const ACCOUNT_KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    /// `x-ms-version` used by [`Azurite::shared_key_request`].
    pub const API_VERSION: &'static str = "2021-08-06";

    /// Starts azurite-blob on a free port with its data in a temporary directory.
    pub async fn start() -> Result<Self> {
        let bin = find_binary(
            "azurite-blob",
            "SPARKSTAGE_TEST_AZURITE",
            &["bin/azurite-blob", "node/node_modules/.bin/azurite-blob"],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("sparkstage-azurite-")
            .tempdir()?;
        let location = dir.path().join("data");
        std::fs::create_dir_all(&location)?;
        let (child, port) = start_peer(
            "azurite-blob",
            &bin,
            dir.path(),
            |port| {
                let mut args: Vec<OsString> = vec![
                    "--blobHost".into(),
                    "127.0.0.1".into(),
                    "--blobPort".into(),
                    port.to_string().into(),
                    "--location".into(),
                    location.clone().into_os_string(),
                ];
                args.extend(
                    ["--skipApiVersionCheck", "--disableTelemetry"]
                        .into_iter()
                        .map(OsString::from),
                );
                args
            },
            "/",
        )
        .await?;
        Ok(Self {
            child,
            port,
            dir,
            http: http_client()?,
        })
    }

    /// The port azurite-blob listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fixture's temporary directory (`data/` is azurite's `--location`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process, e.g. to kill it in the middle of a test.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`, the account's blob service URL.
    pub fn account_url(&self) -> String {
        format!("{}/{}", self.endpoint(), Self::ACCOUNT)
    }

    /// Sends a request signed with SharedKey for `devstoreaccount1`. `path_and_query` is
    /// relative to the account URL, e.g. `/CONTAINER?restype=container`.
    pub async fn shared_key_request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response> {
        let url = url::Url::parse(&format!("{}{path_and_query}", self.account_url()))?;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        all.push(("x-ms-date".into(), date));
        all.push(("x-ms-version".into(), Self::API_VERSION.into()));
        let length = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let signature = shared_key_signature(
            Self::ACCOUNT,
            Self::ACCOUNT_KEY,
            method.as_str(),
            &url,
            &length,
            &all,
        )?;
        let mut req = self.http.request(method, url.as_str()).body(body);
        for (k, v) in &all {
            req = req.header(k.as_str(), v.as_str());
        }
        req = req.header(
            "authorization",
            format!("SharedKey {}:{signature}", Self::ACCOUNT),
        );
        Ok(req.send().await?)
    }

    /// Creates container `name` (`PUT /devstoreaccount1/NAME?restype=container`, SharedKey).
    pub async fn create_container(&self, name: &str) -> Result<()> {
        let resp = self
            .shared_key_request(
                reqwest::Method::PUT,
                &format!("/{name}?restype=container"),
                &[],
                Vec::new(),
            )
            .await?;
        expect_success(resp, &format!("azurite: creating container {name}")).await
    }
}

impl ObjectStorePeer for Azurite {
    /// `http://127.0.0.1:PORT`.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, bucket: &str) -> String {
        format!("az://{bucket}")
    }

    /// Options for `MicrosoftAzureBuilder::with_config` / `parse_url_opts("az://CONTAINER")`.
    ///
    /// These use the account URL as `azure_storage_endpoint` rather than
    /// `azure_storage_use_emulator`, because the emulator mode reads the address from the process
    /// environment (`AZURITE_BLOB_STORAGE_URL`), which a test cannot set per fixture. Requests
    /// and signatures are the same; the only difference is that object_store then sends
    /// `list_with_offset` to the server as `startFrom`, which azurite does not implement.
    fn object_store_options(&self, container: &str) -> Vec<(String, String)> {
        pairs([
            ("azure_storage_account_name", Self::ACCOUNT.into()),
            ("azure_storage_account_key", Self::ACCOUNT_KEY.into()),
            ("azure_storage_endpoint", self.account_url()),
            ("azure_allow_http", "true".into()),
            ("azure_container_name", container.into()),
        ])
    }

    /// Environment for `MicrosoftAzureBuilder::from_env()`: emulator mode
    /// (`AZURE_STORAGE_USE_EMULATOR=true` with `AZURITE_BLOB_STORAGE_URL`), plus the account,
    /// key and endpoint so that a builder that ignores the emulator switch still works.
    fn env(&self) -> Vec<(String, String)> {
        pairs([
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint()),
            ("AZURE_STORAGE_ACCOUNT_NAME", Self::ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", Self::ACCOUNT_KEY.into()),
            ("AZURE_STORAGE_ENDPOINT", self.account_url()),
            ("AZURE_ALLOW_HTTP", "true".into()),
        ])
    }

    fn create_bucket(&self, name: &str) -> impl Future<Output = Result<()>> + Send {
        self.create_container(name)
    }
}

/// The Azure Storage SharedKey signature (base64 HMAC-SHA256 of the string-to-sign) for a
/// request to `url` on `account`, path-style (`/ACCOUNT/...`) as the emulator uses.
/// `headers` are lower-case names; `content_length` is empty for an empty body.
///
/// <https://learn.microsoft.com/en-us/rest/api/storageservices/authorize-with-shared-key>
pub fn shared_key_signature(
    account: &str,
    key_b64: &str,
    method: &str,
    url: &url::Url,
    content_length: &str,
    headers: &[(String, String)],
) -> Result<String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut ms: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    ms.sort();
    let mut to_sign = String::new();
    for part in [
        method,
        header("content-encoding"),
        header("content-language"),
        content_length,
        header("content-md5"),
        header("content-type"),
        "", // Date: x-ms-date is used instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        to_sign.push_str(part);
        to_sign.push('\n');
    }
    for (k, v) in ms {
        let _ = writeln!(to_sign, "{k}:{v}");
    }
    // Canonicalized resource: /ACCOUNT + path (which itself starts with /ACCOUNT in path style),
    // then each query parameter, lower-cased and sorted, values of repeated names comma-joined.
    let _ = write!(to_sign, "/{account}{}", url.path());
    let mut query: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in url.query_pairs() {
        let k = k.to_ascii_lowercase();
        match query.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v.into_owned()),
            None => query.push((k, vec![v.into_owned()])),
        }
    }
    query.sort();
    for (k, mut values) in query {
        values.sort();
        let _ = write!(to_sign, "\n{k}:{}", values.join(","));
    }
    let key = BASE64
        .decode(key_b64)
        .context("account key is not base64")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).context("HMAC key")?;
    mac.update(to_sign.as_bytes());
    Ok(BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    use super::*;

    /// Set in the child started by `watchdog_kills_group_when_parent_aborts`.
    const ABORT_CHILD_VAR: &str = "SPARKSTAGE_TEST_CHILDGUARD_ABORT";

    /// A `sh` in its own group that starts a `sleep` grandchild and prints its pid.
    fn spawn_family() -> Result<(ChildGuard, i32)> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $!; wait"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut guard = ChildGuard::spawn("family", &mut cmd)?;
        let stdout = guard
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        Ok((guard, line.trim().parse()?))
    }

    /// Dead or a zombie waiting for init.
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    fn wait_gone(pid: i32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if is_gone(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        is_gone(pid)
    }

    #[test]
    fn drop_kills_the_whole_group() -> Result<()> {
        let (guard, grandchild) = spawn_family()?;
        assert!(!is_gone(grandchild));
        drop(guard);
        assert!(wait_gone(grandchild, Duration::from_secs(5)));
        Ok(())
    }

    #[test]
    fn terminate_sends_sigterm_first() -> Result<()> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap 'exit 3' TERM; sleep 30 & wait"]);
        let mut guard = ChildGuard::spawn("trap", &mut cmd)?;
        // Give sh time to install the trap.
        std::thread::sleep(Duration::from_millis(200));
        let status = guard.terminate(Duration::from_secs(5))?;
        assert_eq!(status.code(), Some(3));
        Ok(())
    }

    #[test]
    fn watchdog_kills_group_when_parent_aborts() -> Result<()> {
        if std::env::var_os(ABORT_CHILD_VAR).is_some() {
            // The child: start a family, report the grandchild, die without unwinding.
            let (guard, grandchild) = spawn_family()?;
            println!("grandchild={grandchild}");
            std::mem::forget(guard);
            std::process::abort();
        }
        let out = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "peers::tests::watchdog_kills_group_when_parent_aborts",
                "--nocapture",
            ])
            .env(ABORT_CHILD_VAR, "1")
            .output()?;
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let grandchild: i32 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("grandchild="))
            .ok_or_else(|| anyhow!("child printed no pid: {stdout}"))?
            .trim()
            .parse()?;
        assert!(
            wait_gone(grandchild, Duration::from_secs(5)),
            "the watchdog did not kill process {grandchild}"
        );
        Ok(())
    }

    #[test]
    fn missing_binary_says_how_to_install() {
        let err = find_binary(
            "no-such-peer",
            "SPARKSTAGE_TEST_VARIABLE_THAT_IS_NEVER_SET",
            &["bin/no-such-peer"],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("scripts/test-deps.sh"), "{err}");
    }

    #[test]
    fn free_ports_are_not_handed_out_twice() {
        let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
        assert!(!ports.contains(&0));
    }

    #[test]
    fn is_listening_on_tells_our_listener_from_others() -> Result<()> {
        // Python is not guaranteed here, but a listener we hold ourselves is not the child's.
        let ours = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = ours.local_addr()?.port();
        assert!(listening_inodes(port).len() == 1);
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let guard = ChildGuard::spawn("sleep", &mut cmd)?;
        assert!(!guard.is_listening_on(port));
        Ok(())
    }

    #[test]
    fn shared_key_signature_matches_a_known_value() -> Result<()> {
        // Computed independently (Python hmac/hashlib) for this exact string-to-sign.
        let url = url::Url::parse("http://127.0.0.1:10000/devstoreaccount1/c?restype=container")?;
        let headers = vec![
            (
                "x-ms-date".to_string(),
                "Sun, 22 Nov 2026 12:00:00 GMT".to_string(),
            ),
            ("x-ms-version".to_string(), "2021-08-06".to_string()),
        ];
        let sig = shared_key_signature(
            Azurite::ACCOUNT,
            Azurite::ACCOUNT_KEY,
            "PUT",
            &url,
            "",
            &headers,
        )?;
        assert_eq!(sig, EXPECTED_SIGNATURE);
        Ok(())
    }

    const EXPECTED_SIGNATURE: &str = "YkqA96foH6cZHqJ7nUAblKAxvzFv9arjJFve1E4zE+g=";
}
