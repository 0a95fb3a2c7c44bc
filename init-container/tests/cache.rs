//! The node-local cache (`--cache-dir`) shared by several `sparkstage-init` processes at once,
//! against the real staging server (a process).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use sparkstage_api::Digest;
use sparkstage_tests::conformance::test_bytes;
use sparkstage_tests::server::Server;

mod common;
use common::{Dirs, init, stderr};

/// The number in "(N from the node cache)" of a summary line, 0 when absent.
fn from_cache(err: &str) -> usize {
    err.split_once(" from the node cache")
        .and_then(|(before, _)| before.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn entry(cache: &Path, data: &[u8]) -> std::path::PathBuf {
    let hex = Digest::of(data).hex();
    cache.join("sha256").join(&hex[..2]).join(hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_of_one_node_download_each_file_once_and_verify_hits() -> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let files = [
        ("a.jar", "jar", test_bytes(3 << 20, 31)),
        ("b.jar", "jar", test_bytes(700_000, 32)),
        ("c.txt", "file", test_bytes(50_000, 33)),
    ];
    let staged: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(n, k, d)| (*n, *k, d.as_slice()))
        .collect();
    let (id, token) = server.stage(&staged).await?;
    let total: usize = files.iter().map(|f| f.2.len()).sum();
    let node = tempfile::tempdir()?;
    let cache = node.path().join("cache");

    // Six pods of one node start together.
    let pods: Vec<Dirs> = (0..6).map(|_| Dirs::new()).collect::<Result<_>>()?;
    let mut runs = Vec::new();
    for pod in &pods {
        let mut args = pod.bundle_args(&server.url(), &id, &token)?;
        args.extend(["--cache-dir".into(), cache.display().to_string()]);
        runs.push(async move { init(&args, &[]).await });
    }
    let outputs = futures::future::join_all(runs).await;
    let mut hits = 0;
    for output in outputs {
        let output = output?;
        ensure!(output.status.success(), "{}", stderr(&output));
        hits += from_cache(&stderr(&output));
    }
    for pod in &pods {
        for (name, kind, data) in &files {
            let dir = if *kind == "jar" {
                &pod.jars
            } else {
                &pod.files
            };
            assert_eq!(&std::fs::read(dir.join(name))?, data, "{name}");
        }
    }
    assert_eq!(server.bytes_sent().await?, total as u64, "each file once");
    assert_eq!(hits, 5 * files.len());
    for (_, _, data) in &files {
        assert_eq!(&std::fs::read(entry(&cache, data))?, data);
    }

    // A corrupt entry is noticed, removed and replaced by a download.
    let (_, _, b) = &files[1];
    let b_entry = entry(&cache, b);
    std::fs::write(&b_entry, test_bytes(b.len(), 99))?;
    let pod = Dirs::new()?;
    let mut args = pod.bundle_args(&server.url(), &id, &token)?;
    args.extend(["--cache-dir".into(), cache.display().to_string()]);
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    ensure!(err.contains("corrupt") && from_cache(&err) == 2, "{err}");
    assert_eq!(&std::fs::read(pod.jars.join("b.jar"))?, b);
    assert_eq!(&std::fs::read(&b_entry)?, b, "the entry was repaired");
    assert_eq!(server.bytes_sent().await?, (total + b.len()) as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_trimmed_to_its_size_limit() -> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let files = [
        ("a.jar", "jar", test_bytes(400_000, 41)),
        ("b.jar", "jar", test_bytes(300_000, 42)),
        ("c.jar", "jar", test_bytes(200_000, 43)),
    ];
    let staged: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(n, k, d)| (*n, *k, d.as_slice()))
        .collect();
    let (id, token) = server.stage(&staged).await?;
    let node = tempfile::tempdir()?;
    let cache = node.path().join("cache");
    let pod = Dirs::new()?;
    let mut args = pod.bundle_args(&server.url(), &id, &token)?;
    args.extend([
        "--cache-dir".into(),
        cache.display().to_string(),
        "--cache-max-size".into(),
        "600000".into(),
    ]);
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    let mut cached = 0u64;
    for (_, _, data) in &files {
        if let Ok(meta) = std::fs::metadata(entry(&cache, data)) {
            cached += meta.len();
        }
    }
    ensure!(
        cached > 0 && cached <= 600_000,
        "the cache holds {cached} bytes"
    );
    // The pod's own files are complete whatever the cache kept.
    for (name, _, data) in &files {
        assert_eq!(&std::fs::read(pod.jars.join(name)).context(*name)?, data);
    }
    Ok(())
}
