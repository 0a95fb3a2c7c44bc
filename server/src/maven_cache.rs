//! The Maven resolver's shared cache (`sparkstage_maven::shared`) on the server's store, so
//! that every replica's resolutions, and a restarted replica's, find what one of them fetched:
//!
//! - a jar is a source record (`sources/<key>.json`, [`crate::sources`]) pointing at its blob:
//!   one cache for remote sources and Maven, with one eviction (`--cache-max-age`,
//!   `--cache-max-size`) and one garbage collection. A bundle entry naming the jar's URL as a
//!   source finds it too.
//! - a POM or `maven-metadata.xml` is an object `maven/<key>` (the sha256 of its URL, as for
//!   sources), deleted by the sweep `--cache-max-age` after it was written.
//!
//! Failures are logged and answered as a miss: the repository is asked instead.

use std::path::Path;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStoreExt;
use sparkstage_api::Digest;
use sparkstage_maven::shared::SharedCache;
use url::Url;

use crate::sources::{Sources, key, normalize};

/// Where POMs and metadata live.
pub const MAVEN_PREFIX: &str = "maven";

fn file_path(url: &Url) -> Option<object_store::path::Path> {
    let url = normalize(url.as_str()).ok()?;
    Some(object_store::path::Path::from(format!(
        "{MAVEN_PREFIX}/{}",
        key(&url)
    )))
}

impl SharedCache for Sources {
    fn file<'a>(&'a self, url: &'a Url, limit: u64) -> BoxFuture<'a, Option<Vec<u8>>> {
        async move {
            let path = file_path(url)?;
            let found = match self.store().get(&path).await {
                Ok(found) => found,
                Err(object_store::Error::NotFound { .. }) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "the shared Maven cache could not be read");
                    return None;
                }
            };
            if found.meta.size > limit {
                return None;
            }
            match found.bytes().await {
                Ok(bytes) if bytes.len() as u64 <= limit => Some(bytes.to_vec()),
                _ => None,
            }
        }
        .boxed()
    }

    fn keep_file<'a>(&'a self, url: &'a Url, bytes: &'a [u8]) -> BoxFuture<'a, ()> {
        async move {
            let Some(path) = file_path(url) else { return };
            if let Err(e) = self.store().put(&path, bytes.to_vec().into()).await {
                tracing::warn!(error = %e, "the shared Maven cache could not be written");
            }
        }
        .boxed()
    }

    fn artifact<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Option<(Digest, u64)>> {
        async move {
            let url = normalize(url.as_str()).ok()?;
            match self.recorded(&url).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "the shared Maven cache could not be read");
                    None
                }
            }
        }
        .boxed()
    }

    fn keep_artifact<'a>(
        &'a self,
        url: &'a Url,
        file: &'a Path,
        digest: Digest,
        size: u64,
    ) -> BoxFuture<'a, bool> {
        async move {
            let Ok(url) = normalize(url.as_str()) else {
                return false;
            };
            match self.keep(&url, file, digest, size).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "the shared Maven cache could not keep a jar");
                    false
                }
            }
        }
        .boxed()
    }
}
