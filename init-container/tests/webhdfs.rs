//! `sparkstage-init` fetching `webhdfs://` and `hdfs://` sources, as a process.
//!
//! No HDFS NameNode can run on these machines, so this test serves a small WebHDFS double that
//! follows Hadoop's documented wire format (WebHDFS REST API, "Open and Read a File"): a
//! "NameNode" listener answers `GET /webhdfs/v1/<path>?op=OPEN[&offset=N]` with
//! `307 Temporary Redirect` and `Location: http://<datanode>/webhdfs/v1/<path>?op=OPEN&namenoderpcaddress=..&offset=N`,
//! or with `404` and the JSON error body
//! `{"RemoteException":{"exception":"FileNotFoundException","javaClassName":"java.io.FileNotFoundException","message":".."}}`;
//! a "DataNode" listener serves the bytes from `offset`. Resuming is a new `OPEN` with
//! `offset=N`, not a `Range` header, as WebHDFS does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sparkstage_api::Digest;
use sparkstage_tests::conformance::test_bytes;

mod common;
use common::{Dirs, half_then_broken, init, listing, stderr};

const TOKEN: &str = "HDFS-DELEGATION-SECRET-0123456789";

type Queries = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

#[derive(Clone)]
struct Hdfs {
    files: Arc<HashMap<String, Vec<u8>>>,
    datanode: String,
    namenode_queries: Queries,
    datanode_queries: Queries,
    cut: Arc<AtomicUsize>,
    standby: Arc<AtomicUsize>,
}

fn jar() -> Vec<u8> {
    test_bytes(40_000, 21)
}

fn cut_data() -> Vec<u8> {
    test_bytes(256 * 1024, 22)
}

fn remote_exception(status: StatusCode, class: &str, message: &str) -> Response {
    let exception = class.rsplit('.').next().unwrap_or(class);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"RemoteException": {
            "exception": exception,
            "javaClassName": class,
            "message": message,
        }})
        .to_string(),
    )
        .into_response()
}

async fn namenode(
    State(s): State<Hdfs>,
    UrlPath(path): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/{path}");
    s.namenode_queries
        .lock()
        .map(|mut q| q.push((path.clone(), query.clone())))
        .ok();
    if query.get("op").map(String::as_str) != Some("OPEN") {
        return remote_exception(
            StatusCode::BAD_REQUEST,
            "java.lang.IllegalArgumentException",
            "Invalid value for webhdfs parameter \"op\"",
        );
    }
    if path == "/data/standby.txt" && s.standby.fetch_add(1, Ordering::SeqCst) == 0 {
        return remote_exception(
            StatusCode::FORBIDDEN,
            "org.apache.hadoop.ipc.StandbyException",
            "Operation category READ is not supported in state standby",
        );
    }
    if !s.files.contains_key(&path) {
        return remote_exception(
            StatusCode::NOT_FOUND,
            "java.io.FileNotFoundException",
            &format!("File does not exist: {path}"),
        );
    }
    let offset = query.get("offset").cloned().unwrap_or_else(|| "0".into());
    let location = format!(
        "http://{}/webhdfs/v1{path}?op=OPEN&namenoderpcaddress=127.0.0.1:8020&offset={offset}",
        s.datanode
    );
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

async fn datanode(
    State(s): State<Hdfs>,
    UrlPath(path): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/{path}");
    s.datanode_queries
        .lock()
        .map(|mut q| q.push((path.clone(), query.clone())))
        .ok();
    let Some(data) = s.files.get(&path) else {
        return remote_exception(
            StatusCode::NOT_FOUND,
            "java.io.FileNotFoundException",
            &format!("File does not exist: {path}"),
        );
    };
    let offset: usize = query
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    if offset > data.len() {
        return remote_exception(
            StatusCode::FORBIDDEN,
            "java.io.IOException",
            "Offset out of range",
        );
    }
    let rest = data[offset..].to_vec();
    let len = rest.len();
    if path == "/data/cut.bin" && s.cut.fetch_add(1, Ordering::SeqCst) == 0 {
        return (
            [(header::CONTENT_LENGTH, len.to_string())],
            half_then_broken(&rest),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/octet-stream")], rest).into_response()
}

/// The double: the NameNode's address and what both listeners were asked.
struct Double {
    namenode: String,
    state: Hdfs,
}

async fn serve() -> Result<Double> {
    let dn_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let nn_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let files = HashMap::from([
        ("/data/app.jar".to_owned(), jar()),
        ("/data/cut.bin".to_owned(), cut_data()),
        ("/data/standby.txt".to_owned(), test_bytes(1000, 23)),
    ]);
    let state = Hdfs {
        files: Arc::new(files),
        datanode: dn_listener.local_addr()?.to_string(),
        namenode_queries: Arc::default(),
        datanode_queries: Arc::default(),
        cut: Arc::default(),
        standby: Arc::default(),
    };
    let dn = Router::new()
        .route("/webhdfs/v1/{*path}", get(datanode))
        .with_state(state.clone());
    let nn = Router::new()
        .route("/webhdfs/v1/{*path}", get(namenode))
        .with_state(state.clone());
    let namenode = nn_listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(dn_listener, dn).await });
    tokio::spawn(async move { axum::serve(nn_listener, nn).await });
    Ok(Double { namenode, state })
}

fn queries(q: &Queries) -> Vec<(String, HashMap<String, String>)> {
    q.lock().map(|q| q.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhdfs_file_is_fetched_through_the_redirect_with_user_and_token() -> Result<()> {
    let double = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend([
        "--hdfs-delegation-token-file".into(),
        dirs.secret_file("hdfs.token", TOKEN)?.display().to_string(),
        format!(
            "webhdfs://{}/data/app.jar#sha256={}",
            double.namenode,
            Digest::of(&jar()).hex()
        ),
    ]);
    let output = init(&args, &[("HADOOP_USER_NAME", "spark")]).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(std::fs::read(dirs.jars.join("app.jar"))?, jar());
    assert_eq!(
        listing(&dirs.jars),
        [".sparkstage-verified.json", "app.jar"]
    );

    let nn = queries(&double.state.namenode_queries);
    assert_eq!(nn.len(), 1, "{nn:?}");
    let (path, query) = &nn[0];
    assert_eq!(path, "/data/app.jar");
    assert_eq!(query.get("op").map(String::as_str), Some("OPEN"));
    assert_eq!(query.get("user.name").map(String::as_str), Some("spark"));
    assert_eq!(query.get("delegation").map(String::as_str), Some(TOKEN));
    // The double's Location leaves them out; they reach the DataNode all the same.
    let dn = queries(&double.state.datanode_queries);
    assert_eq!(dn.len(), 1, "{dn:?}");
    assert_eq!(dn[0].1.get("user.name").map(String::as_str), Some("spark"));
    assert_eq!(dn[0].1.get("delegation").map(String::as_str), Some(TOKEN));
    assert_eq!(
        dn[0].1.get("namenoderpcaddress").map(String::as_str),
        Some("127.0.0.1:8020")
    );

    // A restart downloads nothing.
    let output = init(&args, &[("HADOOP_USER_NAME", "spark")]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(queries(&double.state.namenode_queries).len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdfs_url_is_read_through_the_webhdfs_address() -> Result<()> {
    let double = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend([
        "--hdfs-user".into(),
        "etl".into(),
        // The RPC port of the URL is not the HTTP port; the override names the latter.
        format!(
            "hdfs://127.0.0.1:8020/data/app.jar#sha256={}",
            Digest::of(&jar()).hex()
        ),
    ]);
    let output = init(&args, &[("SPARKSTAGE_WEBHDFS_ADDRESS", &double.namenode)]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.jars.join("app.jar"))?, jar());
    let nn = queries(&double.state.namenode_queries);
    assert_eq!(nn.len(), 1, "{nn:?}");
    assert_eq!(nn[0].1.get("user.name").map(String::as_str), Some("etl"));
    assert_eq!(nn[0].1.get("delegation"), None);

    // The flag works as well as the variable.
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend([
        "--webhdfs-address".into(),
        format!("http://{}", double.namenode),
        "hdfs://127.0.0.1:8020/data/app.jar".into(),
    ]);
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dirs.jars.join("app.jar"))?, jar());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_fails_naming_the_path_and_exception_and_writes_nothing() -> Result<()> {
    let double = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend([
        "--hdfs-delegation-token-file".into(),
        dirs.secret_file("hdfs.token", TOKEN)?.display().to_string(),
        format!("webhdfs://{}/data/missing.jar", double.namenode),
    ]);
    let output = init(&args, &[("HADOOP_USER_NAME", "spark")]).await?;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("not found: /data/missing.jar"), "{err}");
    assert!(err.contains("FileNotFoundException"), "{err}");
    assert!(err.contains("(1 attempt)"), "permanent, not retried: {err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(!err.contains("delegation="), "{err}");
    let written: Vec<String> = listing(&dirs.jars)
        .into_iter()
        .filter(|n| n.contains("missing"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_body_resumes_with_offset_and_standby_is_retried() -> Result<()> {
    let double = serve().await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.args();
    args.extend([
        "--hdfs-delegation-token-file".into(),
        dirs.secret_file("hdfs.token", TOKEN)?.display().to_string(),
        format!(
            "webhdfs://{}/data/cut.bin#sha256={}",
            double.namenode,
            Digest::of(&cut_data()).hex()
        ),
        format!("webhdfs://{}/data/standby.txt", double.namenode),
    ]);
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(std::fs::read(dirs.files.join("cut.bin"))?, cut_data());
    assert_eq!(
        std::fs::read(dirs.files.join("standby.txt"))?,
        test_bytes(1000, 23)
    );

    let nn: Vec<_> = queries(&double.state.namenode_queries)
        .into_iter()
        .filter(|(p, _)| p == "/data/cut.bin")
        .collect();
    assert_eq!(nn.len(), 2, "{nn:?}");
    assert_eq!(nn[0].1.get("offset"), None);
    let resumed_at: usize = nn[1].1.get("offset").map_or(Ok(0), |o| o.parse())?;
    assert!(resumed_at > 0 && resumed_at < cut_data().len(), "{nn:?}");
    let dn: Vec<_> = queries(&double.state.datanode_queries)
        .into_iter()
        .filter(|(p, _)| p == "/data/cut.bin")
        .collect();
    assert_eq!(dn.len(), 2, "{dn:?}");
    assert_eq!(
        dn[1].1.get("offset").map(String::as_str),
        Some(resumed_at.to_string().as_str())
    );
    assert_eq!(double.state.standby.load(Ordering::SeqCst), 2);
    Ok(())
}
