//! The conformance suite (`sparkstage_tests::conformance`) against every storage backend:
//! local directory, memory, S3 (moto), GCS (fake-gcs-server) and Azure Blob (azurite), each a
//! real server started here.

use anyhow::Result;
use sparkstage_server::storage::{self, OpenOptions, Storage};
use sparkstage_tests::conformance::{api_suite, blob_store_suite, lifecycle_suite};
use sparkstage_tests::peers::{Azurite, FakeGcs, Moto, ObjectStorePeer};

/// The suites on `storage`; the lifecycle's on `fresh`, an empty store of the same backend
/// (it counts and collects everything in its store).
async fn run(storage: Storage, fresh: Storage) -> Result<()> {
    blob_store_suite(&storage).await?;
    api_suite(&storage).await?;
    lifecycle_suite(&fresh).await
}

async fn on_peer(peer: &impl ObjectStorePeer, bucket: &str) -> Result<()> {
    peer.create_bucket(bucket).await?;
    let options = OpenOptions {
        config: peer.object_store_options(bucket),
        fsync: false,
    };
    let open = |prefix: &str| storage::open(&format!("{}/{prefix}", peer.url(bucket)), &options);
    run(open("sparkstage/test")?, open("sparkstage/lifecycle")?).await
}

#[tokio::test]
async fn local_directory() -> Result<()> {
    let (dir, fresh) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let options = OpenOptions {
        config: Vec::new(),
        fsync: true,
    };
    let open =
        |dir: &tempfile::TempDir| storage::open(dir.path().to_str().unwrap_or_default(), &options);
    run(open(&dir)?, open(&fresh)?).await
}

#[tokio::test]
async fn memory() -> Result<()> {
    let open = || storage::open("memory://", &OpenOptions::default());
    run(open()?, open()?).await
}

#[tokio::test]
async fn s3_moto() -> Result<()> {
    on_peer(&Moto::start().await?, "conformance").await
}

#[tokio::test]
async fn gcs_fake_gcs_server() -> Result<()> {
    on_peer(&FakeGcs::start().await?, "conformance").await
}

#[tokio::test]
async fn azure_azurite() -> Result<()> {
    on_peer(&Azurite::start().await?, "conformance").await
}
