//! A cache that replicas share, under each repository's local one: the staging server keeps
//! the POMs, metadata and jars its resolutions fetched in its object store, so that another
//! replica, or this one restarted, does not fetch them from the repository again.
//!
//! - Small files (POMs, `maven-metadata.xml`) are kept whole, by their URL.
//! - Artifacts (jars) are kept by the store as blobs: the shared cache answers their digest
//!   and size, and a resolution that finds them there never holds their bytes.
//!
//! Only what a repository verified goes in (checksums, limits), and only for repositories
//! whose credentials are the server's own: a repository whose URL carried its own credentials
//! (a request's `https://user:pass@...`) is not shared with requests that do not know them. A
//! failure of the shared cache is never a failure of the resolution: the repository is asked
//! as if the cache were not there.

use std::path::Path;

use futures::future::BoxFuture;
use sparkstage_api::Digest;
use url::Url;

/// The shared cache's side of a repository (implemented by the staging server on its store).
pub trait SharedCache: Send + Sync {
    /// The small file fetched from `url` earlier, if it is kept and at most `limit` bytes.
    fn file<'a>(&'a self, url: &'a Url, limit: u64) -> BoxFuture<'a, Option<Vec<u8>>>;

    /// Keeps the verified small file `bytes` fetched from `url`.
    fn keep_file<'a>(&'a self, url: &'a Url, bytes: &'a [u8]) -> BoxFuture<'a, ()>;

    /// The artifact fetched from `url` earlier, if its bytes are kept: their digest and size.
    fn artifact<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Option<(Digest, u64)>>;

    /// Keeps the verified artifact `file` (of `digest` and `size`) fetched from `url`; `true`
    /// once its bytes are kept (the local file is then no longer needed).
    fn keep_artifact<'a>(
        &'a self,
        url: &'a Url,
        file: &'a Path,
        digest: Digest,
        size: u64,
    ) -> BoxFuture<'a, bool>;
}
