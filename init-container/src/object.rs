//! `s3://`, `gs://` and `az://` sources through `object_store`, with credentials and endpoints
//! from the environment the way its builders read them (`AWS_*` including web identity,
//! `GOOGLE_*` including workload identity, `AZURE_*`).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use url::Url;

/// The schemes served by `object_store`.
pub fn is_object_url(url: &Url) -> bool {
    matches!(url.scheme(), "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss")
}

/// A client for the bucket of `url`, and the object's path in it.
pub fn open(url: &Url) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let bucket_url = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => AmazonS3Builder::from_env()
            .with_url(&bucket_url)
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" => GoogleCloudStorageBuilder::from_env()
            .with_url(&bucket_url)
            .build()
            .map(|s| Arc::new(s) as _),
        _ => MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
    }
    .map_err(|e| format!("cannot open the bucket: {e}"))?;
    let path = Path::from_url_path(url.path()).map_err(|e| format!("bad object path: {e}"))?;
    Ok((store, path))
}
