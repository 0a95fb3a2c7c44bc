//! `sparkstage-init` behind the fault-injecting proxy of the test helpers
//! ([`sparkstage_tests::faults`]), in front of the real staging server (a process): connection
//! resets, 500s, 503s, truncated and stalled bodies.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use sparkstage_tests::conformance::test_bytes;
use sparkstage_tests::faults::{Fault, FaultConfig, FaultProxy};
use sparkstage_tests::server::Server;

mod common;
use common::{Dirs, init, listing, stderr};

/// (name, kind, content): jars and files from 64 KiB to 3 MiB.
fn application(count: usize) -> Vec<(String, &'static str, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let size = 64 * 1024 + (i * 977 * 331) % (3 * 1024 * 1024);
            if i % 3 == 0 {
                (
                    format!("data-{i}.csv"),
                    "file",
                    test_bytes(size, 100 + i as u64),
                )
            } else {
                (
                    format!("lib-{i}.jar"),
                    "jar",
                    test_bytes(size, 100 + i as u64),
                )
            }
        })
        .collect()
}

async fn stage(server: &Server, files: &[(String, &str, Vec<u8>)]) -> Result<(String, String)> {
    let files: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(n, k, d)| (n.as_str(), *k, d.as_slice()))
        .collect();
    server.stage(&files).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_transient_faults_every_file_arrives_verified() -> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let files = application(24);
    let (id, token) = stage(&server, &files).await?;
    let mut config = FaultConfig::all(0.3, 7);
    config.stall = Duration::from_secs(5);
    let proxy = FaultProxy::start(&server.url(), config).await?;

    let dirs = Dirs::new()?;
    let mut args = dirs.bundle_args(&proxy.url(), &id, &token)?;
    args.extend(
        [
            "--read-timeout",
            "1s",
            "--max-attempts",
            "15",
            "--parallelism",
            "4",
            "--timeout",
            "120s",
        ]
        .map(String::from),
    );
    let output = init(&args, &[]).await?;
    let err = stderr(&output);
    ensure!(output.status.success(), "{err}");
    ensure!(err.contains("fetched 24 files"), "{err}");
    ensure!(!err.contains(&token), "the token was printed: {err}");
    for (name, kind, data) in &files {
        let dir = if *kind == "jar" {
            &dirs.jars
        } else {
            &dirs.files
        };
        assert_eq!(&std::fs::read(dir.join(name))?, data, "{name}");
    }
    for dir in [&dirs.jars, &dirs.files] {
        let leftovers: Vec<_> = listing(dir)
            .into_iter()
            .filter(|n| n.ends_with(".sparkstage-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    // The run met real faults, of every kind.
    let stats = &proxy.stats;
    let kinds = Fault::ALL
        .iter()
        .filter(|f| stats.injected(**f) > 0)
        .count();
    ensure!(
        stats.total_injected() >= 6 && kinds == Fault::ALL.len(),
        "too few faults to prove anything: {stats:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_permanent_faults_the_run_fails_within_its_deadline_and_leaves_no_partial_file()
-> Result<()> {
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let files = application(4);
    let (id, token) = stage(&server, &files).await?;
    // The manifest passes; every blob download breaks partway through its body.
    let config = FaultConfig {
        rate: 1.0,
        faults: vec![Fault::Truncate, Fault::ResetMidBody, Fault::Stall],
        stall: Duration::from_secs(30),
        only_paths_containing: Some("/blobs/".into()),
        seed: 11,
    };
    let proxy = FaultProxy::start(&server.url(), config).await?;
    let dirs = Dirs::new()?;
    let mut args = dirs.bundle_args(&proxy.url(), &id, &token)?;
    args.extend(["--timeout", "4s", "--read-timeout", "500ms"].map(String::from));
    let started = Instant::now();
    let output = init(&args, &[]).await?;
    let elapsed = started.elapsed();
    let err = stderr(&output);
    ensure!(!output.status.success(), "succeeded: {err}");
    ensure!(
        elapsed < Duration::from_secs(8),
        "took {elapsed:?} for a 4 s deadline"
    );
    // One line per failed source: which, what, how often it was tried.
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("failed: bundle"))
        .collect();
    ensure!(failed.len() == files.len(), "{err}");
    for (name, _, _) in &files {
        ensure!(
            failed.iter().any(|l| l.contains(&format!("entry {name} "))
                && l.contains("attempt")
                && (l.contains("deadline") || l.contains("broke off") || l.contains("truncated"))),
            "no clear line for {name}: {err}"
        );
    }
    ensure!(!err.contains(&token), "the token was printed: {err}");
    assert!(proxy.stats.injected(Fault::Truncate) + proxy.stats.injected(Fault::ResetMidBody) > 0);
    // Nothing at a final name, no temporary file left.
    assert_eq!(listing(&dirs.jars), Vec::<String>::new());
    assert_eq!(listing(&dirs.files), Vec::<String>::new());
    Ok(())
}
