//! The spool: a local directory where whole files are written before they are stored as blobs
//! (remote sources fetched from their origin, uploads through the 2017 fork's API), and a
//! bound on how many are written at once. Its disk needs room for `concurrency` times the
//! largest blob (`--max-blob-size`).

use std::path::{Path, PathBuf};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// Where spool files go, and how many at once.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    permits: Semaphore,
}

impl Spool {
    /// `dir` is created when the first file is written.
    pub fn new(dir: PathBuf, concurrency: usize) -> Self {
        Self {
            dir,
            permits: Semaphore::new(concurrency.max(1)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A turn to write one spool file: waits while `concurrency` are being written. The
    /// directory exists when it returns.
    pub async fn turn(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the spool's semaphore is closed".to_owned()))?;
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
            ApiError::StorageFull(format!(
                "cannot create the spool directory {}: {e}",
                self.dir.display()
            ))
        })?;
        Ok(permit)
    }
}
