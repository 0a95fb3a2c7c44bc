//! Content-addressed blobs in the object store, keyed `blobs/sha256/<2 hex>/<64 hex>`.
//!
//! A write streams straight to the blob's final key through object_store's buffered multipart
//! writer while hashing and counting, and completes the upload only when the digest and size
//! match. Until completion nothing is visible under the key: a local directory stages the write
//! as `<key>#<n>` and renames it into place, S3, GCS and Azure keep uncompleted multipart
//! uploads invisible. A mismatch, a stalled or broken body, or a killed process therefore never
//! exposes a partial blob.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt};
use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::usage::Usage;

pub use crate::request_body::BodyError;

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Stalled(d) => ApiError::BodyStalled(d),
            BodyError::Aborted(m) => ApiError::BodyAborted(m),
        }
    }
}

/// What a `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The blob was written and committed.
    Created { size: u64 },
    /// The blob was already stored; nothing was written.
    Existing { size: u64 },
}

/// Tuning of streamed writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteTuning {
    /// Bytes buffered before a part is sent; blobs smaller than this are one plain put.
    pub part_size: usize,
    /// Parts in flight per upload.
    pub max_concurrency: usize,
}

/// Chunk size of file reads when serving from a local directory.
const FILE_READ_CHUNK: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    tuning: WriteTuning,
    downloads: DownloadBudget,
    usage: Arc<Usage>,
}

/// A stored blob, as a listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedBlob {
    pub digest: Digest,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// Where blobs live in the store.
pub const BLOBS_PREFIX: &str = "blobs/sha256";

/// The bytes of blob content that all downloads together hold in memory at once: each chunk
/// takes its share before it is read (local files) or kept (other stores) and gives it back when
/// the connection has written it, so the server's memory does not grow with the number of
/// connections. Downloads past the budget wait their turn (first come, first served); a client
/// that stops reading is cut off by the connections' send timeout, which frees its share.
#[derive(Debug, Clone)]
pub struct DownloadBudget {
    bytes: Arc<tokio::sync::Semaphore>,
    total: usize,
    /// Chunk buffers given back by written chunks, reused for the next reads: no allocation
    /// and no zeroing per chunk. As many as the budget holds at most.
    buffers: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// Opens and reads of local files on the blocking pool at once: a thread per concurrent
    /// download would otherwise grow with the connections, each with its stack.
    reads: Arc<tokio::sync::Semaphore>,
}

/// Positioned reads of local blob files on the blocking pool at once, across all downloads.
const READS_AT_ONCE: usize = 8;

impl DownloadBudget {
    /// `bytes` in all; at least two chunks.
    pub fn new(bytes: usize) -> Self {
        let total = bytes.max(2 * FILE_READ_CHUNK);
        Self {
            bytes: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
            buffers: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(READS_AT_ONCE)),
        }
    }

    /// A buffer of `len` bytes (at most a chunk) for a read: a reused one when there is one.
    fn buffer(&self, len: usize) -> Pooled {
        let reused = self.buffers.lock().ok().and_then(|mut b| b.pop());
        let mut buffer = reused.unwrap_or_else(|| vec![0u8; FILE_READ_CHUNK]);
        buffer.truncate(len);
        Pooled {
            buffer,
            pool: Some(Arc::clone(&self.buffers)),
            keep: self.total / FILE_READ_CHUNK,
        }
    }

    async fn take(&self, len: usize) -> std::io::Result<tokio::sync::OwnedSemaphorePermit> {
        let len = u32::try_from(len.min(self.total)).unwrap_or(u32::MAX);
        Arc::clone(&self.bytes)
            .acquire_many_owned(len)
            .await
            .map_err(std::io::Error::other)
    }
}

/// A chunk buffer that goes back to its pool when dropped (once written).
struct Pooled {
    buffer: Vec<u8>,
    pool: Option<Arc<std::sync::Mutex<Vec<Vec<u8>>>>>,
    /// The most buffers the pool keeps.
    keep: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        if let Some(pool) = self.pool.take()
            && buffer.capacity() == FILE_READ_CHUNK
            && let Ok(mut pool) = pool.lock()
            && pool.len() < self.keep
        {
            // A short last chunk is filled out again (its tail only) to a whole chunk.
            buffer.resize(FILE_READ_CHUNK, 0);
            pool.push(buffer);
        }
    }
}

/// A chunk's bytes and its share of the [`DownloadBudget`], given back when the chunk is dropped
/// (the bytes first: a pooled buffer is back in the pool before its share is free again).
struct Held<T> {
    bytes: T,
    _share: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Held<T> {
    fn as_ref(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

/// An opened blob, ready to stream.
pub struct BlobRead {
    /// Total size of the blob.
    pub size: u64,
    /// The byte range the stream yields.
    pub range: Range<u64>,
    pub stream: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl BlobStore {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        tuning: WriteTuning,
        downloads: DownloadBudget,
        usage: Arc<Usage>,
    ) -> Self {
        Self {
            store,
            tuning,
            downloads,
            usage,
        }
    }

    /// The bytes stored and the `--max-storage` cap.
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// The object key of a blob.
    pub fn path(digest: &Digest) -> Path {
        let hex = digest.hex();
        Path::from(format!("{BLOBS_PREFIX}/{}/{hex}", &hex[..2]))
    }

    /// Every stored blob, streamed from the store's listing (memory does not grow with the
    /// number of blobs). Keys that are not blobs are skipped.
    pub fn list(&self) -> impl Stream<Item = Result<ListedBlob, object_store::Error>> + use<> {
        self.store
            .list(Some(&Path::from(BLOBS_PREFIX)))
            .try_filter_map(|meta| async move {
                let digest = meta
                    .location
                    .filename()
                    .filter(|name| name.len() == 64)
                    .and_then(|name| format!("sha256:{name}").parse::<Digest>().ok())
                    .filter(|digest| Self::path(digest) == meta.location);
                Ok(digest.map(|digest| ListedBlob {
                    digest,
                    size: meta.size,
                    last_modified: meta.last_modified,
                }))
            })
    }

    /// Counts the stored bytes by listing every blob, and sets [`Usage`] to it.
    pub async fn count_usage(&self) -> Result<u64, object_store::Error> {
        let total = self
            .list()
            .try_fold(0u64, |total, blob| async move {
                Ok(total.saturating_add(blob.size))
            })
            .await?;
        self.usage.set_counted(total);
        Ok(total)
    }

    /// The stored size of a blob, or `None` when it is not stored.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, object_store::Error> {
        match self.store.head(&Self::path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams `body` into the blob `digest`, committing only when the bytes hash to `digest`
    /// and, when `declared` is given, their count equals it. `limit` bounds the size.
    pub async fn put<S>(
        &self,
        digest: &Digest,
        declared: Option<u64>,
        limit: u64,
        body: S,
    ) -> Result<PutOutcome, ApiError>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Send,
    {
        if let Some(size) = declared
            && size > limit
        {
            return Err(ApiError::TooLarge {
                what: format!("the blob {digest} ({size} bytes)"),
                limit,
            });
        }
        if let Some(size) = self.size(digest).await? {
            return match declared {
                Some(d) if d != size => Err(ApiError::bad_request(
                    "size_mismatch",
                    format!(
                        "Content-Length declares {d} bytes but the stored blob {digest} has \
                         {size} bytes, so the body cannot be that blob; nothing was written"
                    ),
                )),
                _ => Ok(PutOutcome::Existing { size }),
            };
        }
        // Under the cap before a byte is written: the declared size at once, else as it arrives.
        let mut reservation = self.usage.reserve(declared.unwrap_or(0)).await?;
        let mut writer = BufWriter::with_capacity(
            Arc::clone(&self.store),
            Self::path(digest),
            self.tuning.part_size,
        )
        .with_max_concurrency(self.tuning.max_concurrency);
        let mut hasher = BackgroundHasher::start();
        let mut received = 0u64;
        let streamed: Result<(), ApiError> = async {
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                received += chunk.len() as u64;
                if received > limit {
                    return Err(ApiError::TooLarge {
                        what: format!("the blob {digest} (more than {limit} bytes arrived)"),
                        limit,
                    });
                }
                match declared {
                    Some(d) if received > d => {
                        return Err(ApiError::SizeMismatch {
                            digest: *digest,
                            declared: d,
                            received,
                        });
                    }
                    Some(_) => {}
                    None => reservation.grow(chunk.len() as u64).await?,
                }
                hasher.update(chunk.clone()).await?;
                writer.put(chunk).await?;
            }
            if let Some(d) = declared
                && received != d
            {
                return Err(ApiError::SizeMismatch {
                    digest: *digest,
                    declared: d,
                    received,
                });
            }
            let actual = hasher.finish().await?;
            if actual != *digest {
                return Err(ApiError::DigestMismatch {
                    expected: *digest,
                    actual,
                    size: received,
                });
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%digest, error = %abort, "could not abort a rejected upload");
            }
            return Err(e);
        }
        if let Err(e) = writer.shutdown().await {
            // A concurrent upload of the same blob may have completed first; on Azure that
            // consumes the uncommitted blocks this upload wanted to commit. The content is the
            // same by construction, so the blob being there now is success.
            if self.size(digest).await? == Some(received) {
                tracing::debug!(%digest, error = %e, "a concurrent upload committed this blob first");
                return Ok(PutOutcome::Existing { size: received });
            }
            // (No abort after a shutdown: object_store panics. Dropping the writer drops the
            // upload, which removes a local staging file; a cloud store keeps an uncompleted
            // multipart upload invisible.)
            drop(writer);
            return Err(ApiError::from(object_store::Error::Generic {
                store: "blob_store",
                source: Box::new(e),
            }));
        }
        reservation.keep();
        Ok(PutOutcome::Created { size: received })
    }

    /// Stores the local file `path` (a spool file) as the blob `digest` of `size` bytes, read
    /// in 512 KiB chunks and checked again on the way, as [`BlobStore::put`] checks an upload.
    pub async fn put_file(
        &self,
        path: &std::path::Path,
        digest: &Digest,
        size: u64,
        limit: u64,
    ) -> Result<PutOutcome, ApiError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            ApiError::Internal(format!(
                "cannot read the spool file {}: {e}",
                path.display()
            ))
        })?;
        let body = futures::TryStreamExt::map_err(
            tokio_util::io::ReaderStream::with_capacity(file, 512 * 1024),
            |e| BodyError::Aborted(format!("the spool file cannot be read: {e}")),
        );
        self.put(digest, Some(size), limit, body).await
    }

    /// Opens a blob for reading, the whole of it or `range`. `Ok(None)` when it is not stored.
    /// Its chunks are not under the download budget: for readers that may hold them (tests,
    /// internal copies); answers to clients use [`BlobStore::download`].
    pub async fn get(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>, object_store::Error> {
        self.open(digest, range, None).await
    }

    /// [`BlobStore::get`] for a download: every chunk holds its share of the download budget
    /// until it is dropped (a connection drops it once written), so a reader that keeps chunks
    /// must not hold more than the budget.
    pub async fn download(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>, object_store::Error> {
        self.open(digest, range, Some(self.downloads.clone())).await
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
        budget: Option<DownloadBudget>,
    ) -> Result<Option<BlobRead>, object_store::Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        // Opening a local file runs on the blocking pool: bounded like the reads, so that a
        // burst of downloads does not start a thread for each.
        let opening = Arc::clone(&self.downloads.reads)
            .acquire_owned()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "blobs",
                source: Box::new(e),
            })?;
        let opened = self.store.get_opts(&Self::path(digest), options).await;
        drop(opening);
        let result = match opened {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = result.meta.size;
        let range = result.range.clone();
        let stream = match result.payload {
            GetResultPayload::File(file, _) => file_stream(
                file,
                range.clone(),
                Arc::clone(&self.downloads.reads),
                budget,
            ),
            GetResultPayload::Stream(s) => match budget {
                None => s.map_err(std::io::Error::other).boxed(),
                Some(budget) => s
                    .map_err(std::io::Error::other)
                    .and_then(move |chunk| {
                        let budget = budget.clone();
                        async move {
                            let share = budget.take(chunk.len()).await?;
                            Ok(Bytes::from_owner(Held {
                                bytes: chunk,
                                _share: Some(share),
                            }))
                        }
                    })
                    .boxed(),
            },
        };
        Ok(Some(BlobRead {
            size,
            range,
            stream,
        }))
    }

    /// Deletes a blob of `size` bytes (garbage collection; tests). Deleting one that is not there
    /// (another replica's collection took it) is not an error; most stores do not tell.
    pub async fn delete(&self, digest: &Digest, size: u64) -> Result<(), object_store::Error> {
        match self.store.delete(&Self::path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.usage.freed(size);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Streams `range` of a local file in chunks read on the blocking pool (object_store's own file
/// stream reads 8 KiB at a time, too slow to keep up with a network card). Each chunk is read by
/// a positioned read, once it has its share of `budget`, straight into a buffer of the budget's
/// pool, and that buffer is what the connection writes, then goes back to the pool: one copy of
/// each chunk, no allocation or zeroing per chunk, never more than the budget. One chunk is read
/// ahead.
fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
    reads: Arc<tokio::sync::Semaphore>,
    budget: Option<DownloadBudget>,
) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let file = Arc::new(file);
    let offsets = (range.start..range.end).step_by(FILE_READ_CHUNK);
    futures::stream::iter(offsets)
        .map(move |offset| {
            let (file, reads, budget) = (Arc::clone(&file), Arc::clone(&reads), budget.clone());
            let len = usize::try_from((range.end - offset).min(FILE_READ_CHUNK as u64))
                .unwrap_or(FILE_READ_CHUNK);
            async move {
                let (share, mut buffer) = match &budget {
                    Some(budget) => (Some(budget.take(len).await?), budget.buffer(len)),
                    None => (
                        None,
                        Pooled {
                            buffer: vec![0u8; len],
                            pool: None,
                            keep: 0,
                        },
                    ),
                };
                // Taken here, read into there: the blocking threads allocate nothing.
                let reading = reads.acquire_owned().await.map_err(std::io::Error::other)?;
                let buffer = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt as _;
                    let read = file
                        .read_exact_at(&mut buffer.buffer, offset)
                        .map(|()| buffer);
                    drop(reading);
                    read
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(Bytes::from_owner(Held {
                    bytes: buffer,
                    _share: share,
                }))
            }
        })
        // The next chunk is read while the connection writes this one.
        .buffered(2)
        .boxed()
}

/// Hashes on a blocking thread, so that hashing overlaps with receiving and writing.
struct BackgroundHasher {
    chunks: tokio::sync::mpsc::Sender<Bytes>,
    task: tokio::task::JoinHandle<Digest>,
}

impl BackgroundHasher {
    fn start() -> Self {
        // Bounded: a slow hasher holds back the body, it does not buffer it.
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            Digest::from_bytes(hasher.finalize().into())
        });
        Self { chunks, task }
    }

    async fn update(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.chunks
            .send(chunk)
            .await
            .map_err(|_| ApiError::Internal("the hashing thread stopped".into()))
    }

    async fn finish(self) -> Result<Digest, ApiError> {
        drop(self.chunks);
        self.task
            .await
            .map_err(|e| ApiError::Internal(format!("the hashing thread failed: {e}")))
    }
}
