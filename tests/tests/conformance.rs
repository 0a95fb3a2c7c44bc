//! The conformance suite (`sparkstage_tests::conformance`) against every storage backend:
//! local directory, memory, S3 (moto), GCS (fake-gcs-server) and Azure Blob (azurite), each a
//! real server started here.

use anyhow::Result;
use sparkstage_server::storage::{self, OpenOptions, Storage};
use sparkstage_tests::conformance::{api_suite, blob_store_suite};
use sparkstage_tests::peers::{Azurite, FakeGcs, Moto, ObjectStorePeer};

async fn run(storage: Storage) -> Result<()> {
    blob_store_suite(&storage).await?;
    api_suite(&storage).await
}

async fn on_peer(peer: &impl ObjectStorePeer, bucket: &str) -> Result<()> {
    peer.create_bucket(bucket).await?;
    let url = format!("{}/sparkstage/test", peer.url(bucket));
    let options = OpenOptions {
        config: peer.object_store_options(bucket),
        fsync: false,
    };
    run(storage::open(&url, &options)?).await
}

#[tokio::test]
async fn local_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = OpenOptions {
        config: Vec::new(),
        fsync: true,
    };
    run(storage::open(
        dir.path().to_str().unwrap_or_default(),
        &options,
    )?)
    .await
}

#[tokio::test]
async fn memory() -> Result<()> {
    run(storage::open("memory://", &OpenOptions::default())?).await
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
