//! Smoke tests of the peer fixtures in `sparkstage_tests::peers`: each real peer (moto for S3,
//! fake-gcs-server for GCS, azurite for Azure Blob) is started, given a bucket, and driven
//! through object_store the way sparkstage uses it, both with the fixture's config options
//! (in this process) and with its environment variables (in a child process that uses the
//! builders' `from_env()`, as a sparkstage binary would).
//!
//! Needs `scripts/test-deps.sh` to have been run.

use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Error as StoreError, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion,
    WriteMultipart,
};
use rand::{RngCore, SeedableRng};
use sparkstage_tests::peers::{Azurite, FakeGcs, Moto, ObjectStorePeer};

const BUCKET: &str = "smoke-bucket";
const MULTIPART_SIZE: usize = 12 * 1024 * 1024;
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Set in the child process that [`check_env`] starts: the URL to probe with `from_env()`.
const CHILD_URL_VAR: &str = "SPARKSTAGE_SMOKE_CHILD_URL";

fn is_already_exists(r: &object_store::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(StoreError::AlreadyExists { .. }))
}

async fn list(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>> {
    let mut keys: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await?;
    keys.sort();
    Ok(keys)
}

/// Drives one store through everything sparkstage relies on and asserts the outcome.
async fn exercise(store: &dyn ObjectStore) -> Result<()> {
    let small = Path::from("smoke/dir/small.txt");
    let big = Path::from("smoke/dir/big.bin");
    let copy = Path::from("smoke/dir/copy.txt");
    let versioned = Path::from("smoke/versioned");

    // Create-only put, then read back.
    store
        .put_opts(
            &small,
            PutPayload::from_static(b"hello"),
            PutMode::Create.into(),
        )
        .await
        .context("first PutMode::Create")?;
    let got = store.get(&small).await?.bytes().await?;
    assert_eq!(&got[..], b"hello");
    assert_eq!(store.head(&small).await?.size, 5);

    // A second create-only put must fail with AlreadyExists and leave the object alone.
    let again = store
        .put_opts(
            &small,
            PutPayload::from_static(b"world"),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        is_already_exists(&again),
        "second PutMode::Create: {again:?}"
    );
    assert_eq!(&store.get(&small).await?.bytes().await?[..], b"hello");

    // Compare-and-swap on the version the put returned.
    let v1 = store
        .put(&versioned, PutPayload::from_static(b"v1"))
        .await?;
    let current = UpdateVersion {
        e_tag: v1.e_tag.clone(),
        version: v1.version.clone(),
    };
    store
        .put_opts(
            &versioned,
            PutPayload::from_static(b"v2"),
            PutMode::Update(current.clone()).into(),
        )
        .await
        .context("PutMode::Update with the current version")?;
    let stale = store
        .put_opts(
            &versioned,
            PutPayload::from_static(b"v3"),
            PutMode::Update(current).into(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Precondition { .. })),
        "PutMode::Update with a stale version: {stale:?}"
    );
    assert_eq!(&store.get(&versioned).await?.bytes().await?[..], b"v2");

    // 12 MiB multipart upload (5 MiB parts), then ranged and full reads.
    let mut data = vec![0u8; MULTIPART_SIZE];
    rand::rngs::StdRng::seed_from_u64(42).fill_bytes(&mut data);
    let upload = store.put_multipart(&big).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    writer.write(&data);
    writer.finish().await.context("multipart upload")?;
    assert_eq!(store.head(&big).await?.size, MULTIPART_SIZE as u64);
    let range = 6_000_000..6_000_100u64;
    let got = store.get_range(&big, range.clone()).await?;
    assert_eq!(&got[..], &data[range.start as usize..range.end as usize]);
    // The part boundary.
    let range = (PART_SIZE - 10) as u64..(PART_SIZE + 10) as u64;
    let got = store.get_range(&big, range.clone()).await?;
    assert_eq!(&got[..], &data[range.start as usize..range.end as usize]);
    let got = store.get(&big).await?.bytes().await?;
    assert!(
        got[..] == data[..],
        "full read of the multipart object differs"
    );

    // Copy only if the target does not exist.
    let refused = store.copy_if_not_exists(&small, &big).await;
    assert!(
        is_already_exists(&refused),
        "copy_if_not_exists onto an existing object: {refused:?}"
    );
    assert_eq!(store.head(&big).await?.size, MULTIPART_SIZE as u64);
    store.copy_if_not_exists(&small, &copy).await?;
    assert_eq!(&store.get(&copy).await?.bytes().await?[..], b"hello");

    // Listing: recursive, from an offset, and by directory.
    assert_eq!(
        list(store, "smoke/dir").await?,
        [
            "smoke/dir/big.bin",
            "smoke/dir/copy.txt",
            "smoke/dir/small.txt"
        ]
    );
    let mut after: Vec<String> = store
        .list_with_offset(Some(&Path::from("smoke")), &big)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await?;
    after.sort();
    assert_eq!(
        after,
        [
            "smoke/dir/copy.txt",
            "smoke/dir/small.txt",
            "smoke/versioned"
        ]
    );
    let top = store
        .list_with_delimiter(Some(&Path::from("smoke")))
        .await?;
    assert_eq!(
        top.common_prefixes,
        [Path::from("smoke/dir")],
        "common prefixes"
    );
    assert_eq!(
        top.objects
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>(),
        ["smoke/versioned"]
    );

    // Delete everything; reads then say NotFound.
    for path in [&small, &big, &copy, &versioned] {
        store.delete(path).await?;
    }
    assert!(list(store, "smoke").await?.is_empty());
    let gone = store.get(&small).await;
    assert!(
        matches!(gone, Err(StoreError::NotFound { .. })),
        "get after delete: {:?}",
        gone.map(|_| ())
    );
    Ok(())
}

/// Runs this test binary again, as [`env_child_probe`], with only the peer's environment
/// variables for the store (none inherited), so that the child's `from_env()` sees exactly
/// what `peer.env()` gives.
fn check_env(peer: &impl ObjectStorePeer, bucket: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "env_child_probe",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if ["AWS_", "GOOGLE_", "AZURE_", "AZURITE_", "SERVICE_ACCOUNT"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            cmd.env_remove(key);
        }
    }
    cmd.envs(peer.env()).env(CHILD_URL_VAR, peer.url(bucket));
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("1 passed") || !stdout.contains("probe ok") {
        bail!(
            "from_env() probe failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    Ok(())
}

/// In the child process started by [`check_env`]: builds the store with the builder's
/// `from_env()` and round-trips an object. Does nothing in a normal test run.
#[tokio::test]
async fn env_child_probe() -> Result<()> {
    let Ok(url) = std::env::var(CHILD_URL_VAR) else {
        return Ok(());
    };
    let store: Box<dyn ObjectStore> = match url.split_once("://").map(|(s, _)| s) {
        Some("s3") => Box::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(&url)
                .build()?,
        ),
        Some("gs") => Box::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(&url)
                .build()?,
        ),
        Some("az") => Box::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(&url)
                .build()?,
        ),
        _ => bail!("unexpected URL {url}"),
    };
    let path = Path::from("from-env/probe.txt");
    store
        .put_opts(
            &path,
            PutPayload::from_static(b"probe"),
            PutMode::Create.into(),
        )
        .await?;
    ensure!(&store.get(&path).await?.bytes().await?[..] == b"probe");
    ensure!(is_already_exists(
        &store
            .put_opts(&path, PutPayload::from_static(b"x"), PutMode::Create.into())
            .await
    ));
    store.delete(&path).await?;
    println!("probe ok: {url}");
    Ok(())
}

async fn smoke(peer: &impl ObjectStorePeer) -> Result<()> {
    peer.create_bucket(BUCKET).await?;
    // Through parse_url_opts with the fixture's options.
    let url = url::Url::parse(&peer.url(BUCKET))?;
    let (store, prefix) = object_store::parse_url_opts(&url, peer.object_store_options(BUCKET))?;
    assert_eq!(prefix, Path::default());
    exercise(store.as_ref()).await?;
    // Through the environment, in a child process.
    check_env(peer, BUCKET)
}

#[tokio::test]
async fn moto_s3() -> Result<()> {
    let moto = Moto::start().await?;
    smoke(&moto).await
}

#[tokio::test]
async fn fake_gcs() -> Result<()> {
    let gcs = FakeGcs::start().await?;
    smoke(&gcs).await
}

#[tokio::test]
async fn azurite_blob() -> Result<()> {
    let azurite = Azurite::start().await?;
    smoke(&azurite).await
}
