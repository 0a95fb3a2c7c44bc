//! The node-local cache (`--cache-dir`): content-addressed files shared by every init container
//! of a node, typically a hostPath.
//!
//! Layout under the cache root:
//! - `sha256/<2 hex>/<64 hex>`: a file whose content hashes to its name;
//! - `locks/<64 hex>.lock`: one lock file per digest, locked with `flock` while a process
//!   fills the target from the cache or downloads the file into it. A second init container that
//!   wants the same file waits for the first and then copies it from the cache, so a node
//!   downloads a file once however many pods start together; a process that dies releases its
//!   locks with its file descriptors;
//! - `tmp/`: files being added, renamed into `sha256/` only when complete and fsynced.
//!
//! Only files with a known sha256 (bundle entries, `#sha256=` sources) use the cache. A hit is
//! hashed while it is copied and checked like a download; a corrupt entry is removed and the file
//! downloaded. The cache never fails a run: when it cannot be used (full, read-only), the file is
//! downloaded and one warning line says why. After a run that added files, the least recently used
//! entries (by mtime, which a hit refreshes) are removed past `--cache-max-size`; a process still
//! copying a removed entry keeps reading it through its open descriptor.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sparkstage_api::Digest;
use tokio::time::Instant;

/// How often a waiter tries a lock another process holds.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A file in `tmp/` older than this belongs to a process that died; the next eviction removes it.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub root: PathBuf,
    pub max_size: u64,
}

/// An opened cache.
#[derive(Debug, Clone)]
pub struct Cache {
    config: CacheConfig,
}

/// A digest's lock, held until dropped.
pub struct Lock {
    _file: File,
}

impl Cache {
    /// Creates the cache's directories.
    pub fn open(config: CacheConfig) -> std::io::Result<Self> {
        for dir in ["sha256", "locks", "tmp"] {
            std::fs::create_dir_all(config.root.join(dir))?;
        }
        Ok(Self { config })
    }

    pub fn entry_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.config.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// Locks `digest`, waiting for another holder until `deadline`.
    pub async fn lock(&self, digest: &Digest, deadline: Instant) -> Result<Lock, String> {
        let path = self
            .config
            .root
            .join("locks")
            .join(format!("{}.lock", digest.hex()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() + LOCK_POLL >= deadline {
                        return Err(format!(
                            "another init container held the cache lock {} until the deadline",
                            path.display()
                        ));
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
        }
    }

    /// Opens the entry of `digest` if there is one, and marks it recently used.
    pub async fn open_entry(&self, digest: &Digest) -> Option<tokio::fs::File> {
        let path = self.entry_path(digest);
        let file = match std::fs::File::options().read(true).write(true).open(&path) {
            Ok(file) => {
                let _ = file.set_modified(SystemTime::now());
                file
            }
            // A read-only cache still serves hits, just without LRU order.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                std::fs::File::open(&path).ok()?
            }
            Err(_) => return None,
        };
        Some(tokio::fs::File::from_std(file))
    }

    /// Removes a corrupt entry.
    pub async fn remove(&self, digest: &Digest) {
        let _ = tokio::fs::remove_file(self.entry_path(digest)).await;
    }

    /// Adds the verified file `source` as the entry of `digest`: copied to `tmp/`, fsynced and
    /// renamed into place, so a reader sees the whole entry or none.
    pub async fn insert(&self, digest: &Digest, source: &Path) -> std::io::Result<()> {
        let entry = self.entry_path(digest);
        if tokio::fs::try_exists(&entry).await.unwrap_or(false) {
            return Ok(());
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let tmp = self.config.root.join("tmp").join(format!(
            "{}.{}.{nanos}",
            digest.hex(),
            std::process::id()
        ));
        let result = async {
            // std::fs::copy uses copy_file_range: the kernel copies, or reflinks where it can.
            tokio::fs::copy(source, &tmp).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            if let Some(parent) = entry.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::rename(&tmp, &entry).await?;
            if let Some(parent) = entry.parent() {
                crate::state::sync_dir(parent);
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Removes the least recently used entries until the cache fits its size limit, and
    /// temporary files of dead processes. Returns the bytes removed.
    pub fn evict(&self) -> std::io::Result<u64> {
        let now = SystemTime::now();
        let mut entries = Vec::new();
        let mut total = 0u64;
        for shard in std::fs::read_dir(self.config.root.join("sha256"))? {
            let Ok(shard) = shard else { continue };
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let Ok(meta) = file.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                total += meta.len();
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.push((used, meta.len(), file.path()));
            }
        }
        let mut removed = 0;
        if total > self.config.max_size {
            entries.sort();
            for (_, size, path) in entries {
                if total <= self.config.max_size {
                    break;
                }
                if std::fs::remove_file(&path).is_ok() {
                    total -= size;
                    removed += size;
                }
            }
        }
        for file in std::fs::read_dir(self.config.root.join("tmp"))?.flatten() {
            let stale = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_TMP);
            if stale {
                let _ = std::fs::remove_file(file.path());
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_size: u64) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(CacheConfig {
            root: dir.path().join("cache"),
            max_size,
        })
        .expect("open");
        (dir, cache)
    }

    #[tokio::test]
    async fn insert_then_hit_and_lru_eviction() {
        let (dir, cache) = cache(10);
        let mut digests = Vec::new();
        for (i, content) in [b"aaaa".as_slice(), b"bbbb", b"cccc"].iter().enumerate() {
            let source = dir.path().join(format!("f{i}"));
            std::fs::write(&source, content).expect("write");
            let digest = Digest::of(content);
            cache.insert(&digest, &source).await.expect("insert");
            // Distinct, ordered mtimes without sleeping.
            let file = File::options()
                .write(true)
                .open(cache.entry_path(&digest))
                .expect("open");
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + i as u64))
                .expect("set mtime");
            digests.push(digest);
        }
        // Using the oldest makes it the newest: the second is evicted instead.
        assert!(cache.open_entry(&digests[0]).await.is_some());
        assert_eq!(cache.evict().expect("evict"), 4);
        assert!(cache.entry_path(&digests[0]).exists());
        assert!(!cache.entry_path(&digests[1]).exists());
        assert!(cache.entry_path(&digests[2]).exists());
        assert!(cache.open_entry(&digests[1]).await.is_none());
    }

    #[tokio::test]
    async fn a_held_lock_makes_the_next_locker_wait_until_it_is_dropped() {
        let (_dir, cache) = cache(1 << 20);
        let digest = Digest::of(b"x");
        let held = cache
            .lock(&digest, Instant::now() + Duration::from_secs(5))
            .await
            .expect("first lock");
        let refused = cache
            .lock(&digest, Instant::now() + Duration::from_millis(100))
            .await;
        assert!(refused.is_err_and(|e| e.contains("until the deadline")));
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .lock(&digest, Instant::now() + Duration::from_secs(5))
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!waiter.is_finished());
        drop(held);
        assert!(waiter.await.expect("join"));
    }
}
