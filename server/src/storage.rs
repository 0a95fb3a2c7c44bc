//! Opens the object store named by `--storage`, and prepares a local directory for use.
//!
//! Everything sparkstage keeps (blobs, bundle records, the layout marker) lives in that one
//! store, so several server processes pointed at one bucket serve the same bundles. A local
//! directory is the embedded default; it is locked so that only one server writes to it, which
//! makes it safe to delete the leftovers of interrupted writes at start.

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

/// An opened store and what kind of backend it is.
#[derive(Debug, Clone)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    pub backend: Backend,
    /// The `--storage` value with any credentials removed, for logs.
    pub display: String,
    /// Held for the life of the process when the backend is a local directory.
    _lock: Option<Arc<File>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Local { root: PathBuf },
    Memory,
    S3,
    Gcs,
    Azure,
}

impl Backend {
    /// Whether writes go to a cloud store (multipart parts have a minimum size there).
    pub fn is_cloud(&self) -> bool {
        matches!(self, Self::S3 | Self::Gcs | Self::Azure)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("--storage {url}: {message}")]
    Invalid { url: String, message: String },
    #[error("--storage {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--storage {path} is in use by another sparkstage-server (lock file {lock}); a local \
         directory serves one server only: run several replicas on s3://, gs:// or az:// storage"
    )]
    Locked { path: String, lock: String },
    #[error("--storage {url}: {source}")]
    Backend {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// The name of the lock file in a local storage directory.
pub const LOCK_FILE: &str = ".sparkstage.lock";

/// Options of [`open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Extra backend configuration (object_store config keys such as `endpoint`,
    /// `access_key_id`), applied over what the environment gives.
    pub config: Vec<(String, String)>,
    /// fsync local files and directories before acknowledging writes.
    pub fsync: bool,
}

/// Opens the store `url` names. Cloud builders start from the environment (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`) as object_store reads it, then apply `options.config`.
pub fn open(url: &str, options: &OpenOptions) -> Result<Storage, StorageError> {
    let invalid = |message: String| StorageError::Invalid {
        url: sparkstage_api::shown::url_text(url),
        message,
    };
    let backend_err = |source| StorageError::Backend {
        url: sparkstage_api::shown::url_text(url),
        source,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return open_local(FsPath::new(url), options.fsync);
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let prefix = Path::from_url_path(parsed.path()).map_err(|e| invalid(e.to_string()))?;
    let config = |known: &dyn Fn(&str) -> bool| -> Result<(), StorageError> {
        match options.config.iter().find(|(k, _)| !known(k)) {
            Some((k, _)) => Err(invalid(format!("unknown {scheme} option {k:?}"))),
            None => Ok(()),
        }
    };
    let (store, backend): (Arc<dyn ObjectStore>, Backend) = match scheme {
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("a file:// URL needs an absolute path".into()))?;
            return open_local(&path, options.fsync);
        }
        "memory" => {
            if !rest.is_empty() {
                return Err(invalid("memory:// takes no bucket or path".into()));
            }
            (Arc::new(InMemory::new()), Backend::Memory)
        }
        "s3" | "s3a" => {
            config(&|k| AmazonS3ConfigKey::from_str(k).is_ok())?;
            let mut b = AmazonS3Builder::from_env().with_url(url);
            for (k, v) in &options.config {
                if let Ok(key) = AmazonS3ConfigKey::from_str(k) {
                    b = b.with_config(key, v);
                }
            }
            (Arc::new(b.build().map_err(backend_err)?), Backend::S3)
        }
        "gs" => {
            config(&|k| GoogleConfigKey::from_str(k).is_ok())?;
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
            for (k, v) in &options.config {
                if let Ok(key) = GoogleConfigKey::from_str(k) {
                    b = b.with_config(key, v);
                }
            }
            (Arc::new(b.build().map_err(backend_err)?), Backend::Gcs)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            config(&|k| AzureConfigKey::from_str(k).is_ok())?;
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url);
            for (k, v) in &options.config {
                if let Ok(key) = AzureConfigKey::from_str(k) {
                    b = b.with_config(key, v);
                }
            }
            (Arc::new(b.build().map_err(backend_err)?), Backend::Azure)
        }
        other => {
            return Err(invalid(format!(
                "unknown scheme {other:?}; use a directory, memory://, s3://, gs:// or az://"
            )));
        }
    };
    let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    };
    Ok(Storage {
        store,
        backend,
        display: sparkstage_api::shown::url_text(url),
        _lock: None,
    })
}

fn open_local(dir: &FsPath, fsync: bool) -> Result<Storage, StorageError> {
    let io = |source| StorageError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let root = std::fs::canonicalize(dir).map_err(io)?;
    let lock_path = root.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StorageError::Locked {
                path: root.display().to_string(),
                lock: lock_path.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|source| StorageError::Backend {
            url: root.display().to_string(),
            source,
        })?
        .with_fsync(fsync);
    Ok(Storage {
        store: Arc::new(store),
        display: root.display().to_string(),
        backend: Backend::Local { root },
        _lock: Some(Arc::new(lock)),
    })
}

/// Deletes what interrupted writes left in a local storage directory: object_store stages a
/// write to `name` as `name#<n>` and renames it into place only when complete, so such a file
/// is never a blob. Returns how many files were removed. Only call this while holding the
/// directory's lock (as [`open`] does), or a live upload's staging file could be removed.
pub fn remove_partial_writes(root: &FsPath) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if is_staging_name(&entry.file_name().to_string_lossy()) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

/// object_store's local staging names end in `#` and digits.
fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// The JSON document at `path` read as `T`: `None` when it is not there, or when it does not
/// read as `T` (said in a warning: a record written whole that does not read is not ours to
/// judge, and whoever keeps it decides).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<T>, crate::error::ApiError> {
    let bytes = match store.get(path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            tracing::warn!(%path, error = %e, "ignoring an unreadable record");
            Ok(None)
        }
    }
}

/// Deletes `path`; one that is already gone (another replica deleted it) is not an error.
pub async fn delete_quietly(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<(), crate::error::ApiError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging_name("abc#1"));
        assert!(is_staging_name("abc#12345"));
        assert!(!is_staging_name("abc#"));
        assert!(!is_staging_name("abc#x1"));
        assert!(!is_staging_name("abc"));
    }

    #[test]
    fn local_directory_is_locked_and_cleaned() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = open(
            dir.path().to_str().unwrap_or_default(),
            &OpenOptions::default(),
        )?;
        let second = open(
            dir.path().to_str().unwrap_or_default(),
            &OpenOptions::default(),
        );
        assert!(
            matches!(second, Err(StorageError::Locked { .. })),
            "{second:?}"
        );
        std::fs::create_dir_all(dir.path().join("blobs/sha256/ab"))?;
        std::fs::write(dir.path().join("blobs/sha256/ab/abcd#3"), b"partial")?;
        std::fs::write(dir.path().join("blobs/sha256/ab/abcd"), b"whole")?;
        assert_eq!(remove_partial_writes(dir.path())?, 1);
        assert!(dir.path().join("blobs/sha256/ab/abcd").exists());
        drop(first);
        assert!(
            open(
                dir.path().to_str().unwrap_or_default(),
                &OpenOptions::default()
            )
            .is_ok()
        );
        Ok(())
    }

    #[test]
    fn rejects_unknown_schemes_and_options() {
        assert!(matches!(
            open("ftp://x/y", &OpenOptions::default()),
            Err(StorageError::Invalid { .. })
        ));
        let opts = OpenOptions {
            config: vec![("no_such_key".into(), "1".into())],
            fsync: false,
        };
        assert!(matches!(
            open("s3://b/p", &opts),
            Err(StorageError::Invalid { .. })
        ));
    }
}
